"""The zygote's warm-up (worker/prewarm.py) runs a whole worker session and leaves nothing behind.

It runs in the zygote right before gc.freeze() and the first fork, so whatever it leaves
(a thread, a socket, an environment variable, a logging handler, the SDK's module attributes
pointed elsewhere) would be inherited by every worker; and a failure must never stop the
zygote. Each case runs in a fresh interpreter, as the zygote's preload does.
"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import asyncio, json, logging, os, sys, threading
import lark_oapi.core.http.transport as transport
import lark_oapi.ws.client as ws_client
from shared import lazysdk
from worker import prewarm, tlscontexts

def snapshot():
    root = logging.getLogger()
    return {"env": dict(os.environ), "fds": sorted(os.listdir("/proc/self/fd")),
            "threads": len(threading.enumerate()), "handlers": len(root.handlers),
            "level": root.level,
            "loop": id(asyncio.get_event_loop_policy().get_event_loop()),
            "sdk": [id(transport.requests), id(ws_client.requests),
                                         id(ws_client.loop), id(ws_client._ws_connect_kwargs)],
            "late_sdk_hook": repr(lazysdk.on_init)}

os.environ["HTTPS_PROXY"] = "http://127.0.0.1:9"  # the warm-up must not go through it
if sys.argv[1] == "fail":
    async def broken(self):
        raise OSError("no loopback here")
    prewarm._StandIn._serve = broken
before = snapshot()
echoed = prewarm.run()
after = snapshot()
print(json.dumps({"echoed": echoed, "same": {k: before[k] == after[k] for k in before},
                  "contexts": sorted(key.split(":")[0] for key in tlscontexts._contexts)}))
"""


def warm(case: str) -> dict:
    done = subprocess.run([sys.executable, "-c", SCRIPT, case], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "stderr": done.stderr}


def test_warm_up_echoes_an_event_and_puts_everything_back():
    result = warm("ok")
    assert result["echoed"], result["stderr"][-3000:]
    assert all(result["same"].values()), result["same"]
    # the session's HTTPS calls and its wss:// connect went through the shared contexts
    assert result["contexts"] == ["requests", "websocket"]
    assert "left" not in result["stderr"], result["stderr"][-3000:]


def test_a_failed_warm_up_is_logged_and_the_zygote_goes_on():
    result = warm("fail")
    assert result["echoed"] is False
    assert all(result["same"].values()), result["same"]
    assert "zygote warm-up failed" in result["stderr"] and "no loopback here" in result["stderr"]
