"""Imported once by the zygote (forkserver) before any worker is forked.

Importing what a worker runs costs seconds and tens of MB; doing it here, then
freezing the GC, leaves those pages shared copy-on-write by every worker. Without
gc.freeze() the first collection in each child would touch every object
header and copy the pages back.

The SDK's package `__init__` files are deferred in every larkfleet process
(shared/lazysdk.py), so the modules larkfleet uses load in ~1 s, and by default
(`LARKFLEET_SDK_PRELOAD=used`) the zygote stops there: ~66 MB instead of ~196 MB, so
each fork copies a third of the page table (bench/NOTES.md, "Connect at N = 1,000").
`all` loads the rest as an eager `import lark_oapi` would, so that tenants' handlers
that use the whole SDK (`lark.Client`) share those pages instead of importing them into
each worker; a worker whose handler does that without it says so in its log
(worker/main.py).

Modules a worker would otherwise import after the fork are private to every
worker, so they are imported here too: `websockets` loads its asyncio client
lazily on the SDK's first connect (measured: +4 MiB private per worker).

Then one whole worker session runs here against a loopback stand-in (worker/prewarm.py),
so lazy state is built once and shared, and so are the TLS client contexts with the CA
bundle loaded (worker/tlscontexts.py). glibc is held to one malloc arena first; after
gc.freeze() the free blocks of obmalloc's partly used pools and glibc's free chunks are
taken, so a child's allocations do not scatter writes over shared pages
(worker/prefork.py). Figures: bench/NOTES.md, "Private memory".

On CPython 3.12+ every object alive then is made immortal before gc.freeze()
(worker/immortal.py), so a worker's reads no longer write reference counts into shared
pages: 11.8 -> 6.1 MiB private per idle worker.

The heap stays in 4 KiB pages. Huge pages made each fork copy a small page table, but
every worker splits them on its first writes, and a 2 MiB folio mapped page by page in
1,000 workers makes each reverse-map walk of it (the kernel's page-access monitoring and
reclaim) visit 512 entries per worker: on a host running DAMON that cost more CPU than
the forks saved (bench/NOTES.md, "Connect at N = 1,000").
"""

import gc
import logging
import time

import aiohttp  # noqa: F401
import lark_oapi.ws.client  # noqa: F401
import msgspec  # noqa: F401
import setproctitle
import websockets.asyncio.client
import websockets.extensions.permessage_deflate  # noqa: F401
import zmq.asyncio  # noqa: F401

import worker.entry
import worker.main  # noqa: F401
from shared import lazysdk
from worker import immortal, prefork, prewarm, tlscontexts


def _load_the_whole_sdk() -> None:
    """`LARKFLEET_SDK_PRELOAD=all`: every SDK module, as an eager `import lark_oapi` would
    (supervisor/config.py refused any value but used and all before the zygote started)."""
    if lazysdk.preload_choice() == "all":
        started = time.monotonic()
        ran = lazysdk.load_all()
        logging.getLogger(__name__).info(
            "whole SDK preloaded: %d package __init__ files in %.1f s", ran,
            time.monotonic() - started)


_load_the_whole_sdk()
prefork.single_malloc_arena()  # before the warm-up starts threads
prewarm.run()
tlscontexts.build_for_workers()
setproctitle.setproctitle("larkfleet zygote")

gc.collect()
immortal.immortalize_heap()
gc.freeze()
prefork.fill_obmalloc_pools()
prefork.fill_malloc_holes()
