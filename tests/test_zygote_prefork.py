"""worker/prefork.py: the zygote takes the free blocks both allocators left in its pages.

Each case runs in a fresh interpreter: the blocks taken are never given back.
"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import ctypes, json
from worker import prefork

def holes():
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = prefork._Mallinfo2
    info = libc.mallinfo2()
    return info.fordblks - info.keepcost

# holes in both allocators: keep every other object of a long run
small = [(i, i + 1) for i in range(20000)]                  # 56-byte tuples: obmalloc
large = [bytearray(3000) for _ in range(2000)]               # malloc'd buffers
del small[::2], large[::2]
before = {"blocks": prefork.obmalloc_free_blocks().get(64, 0), "holes": holes()}
taken = {"blocks": prefork.fill_obmalloc_pools(), "bytes": prefork.fill_malloc_holes()}
after = {"blocks": prefork.obmalloc_free_blocks().get(64, 0), "holes": holes()}
print(json.dumps({"before": before, "taken": taken, "after": after}))
"""


def test_free_blocks_of_both_allocators_are_taken():
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    before, taken, after = result["before"], result["taken"], result["after"]
    assert before["blocks"] >= 5000 and before["holes"] >= 3000 * 1000, result
    assert taken["blocks"] >= before["blocks"] and taken["bytes"] >= 3000 * 1000, result
    # what the fill itself allocated afterwards may leave a pool's worth, no more
    assert after["blocks"] < 300 and after["holes"] < 64 * 1024, result
