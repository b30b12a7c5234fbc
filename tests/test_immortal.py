"""worker/immortal.py: the zygote's objects stop taking reference-count writes, so a
forked child that only reads them keeps their pages shared.

Each check runs in a fresh interpreter: immortalising the test process would keep every
object it holds alive for the rest of the session.
"""

import json
import subprocess
import sys
import textwrap

import pytest

NEEDS_IMMORTAL = pytest.mark.skipif(sys.version_info < (3, 12),
                                    reason="immortal objects need CPython 3.12 (PEP 683)")


def run(script: str) -> dict:
    """Run `script` in a new interpreter; it prints one JSON object as its last line."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True,
                          text=True, timeout=120, check=True)
    return json.loads(done.stdout.splitlines()[-1])


@NEEDS_IMMORTAL
def test_every_kind_of_object_is_marked_and_references_no_longer_write() -> None:
    got = run("""
        import ctypes, gc, json
        from worker import immortal

        def handler(text):
            return text + " answered", 2.5, (1, "x" * 40)

        class Bot:
            pass

        table = {"nested": [Bot(), 10**30, b"bytes" * 9, 3.25, "an ordinary %d" % 7]}
        gc.collect()
        marked = immortal.immortalize_heap()
        objects = {"function": handler, "code": handler.__code__,
                   "code constant": handler.__code__.co_consts[-1], "class": Bot,
                   "instance": table["nested"][0], "dict": table, "list": table["nested"],
                   "big int": table["nested"][1], "bytes": table["nested"][2],
                   "float": table["nested"][3], "string": table["nested"][4]}
        word = lambda obj: ctypes.c_ssize_t.from_address(id(obj)).value
        before = {name: word(obj) for name, obj in objects.items()}
        held = [obj for obj in objects.values() for _ in range(5)]
        after = {name: word(obj) for name, obj in objects.items()}
        print(json.dumps({"marked": marked, "before": before, "after": after,
                          "result": handler("hi")[0]}))
    """)
    assert got["marked"] > 10_000  # the interpreter's own modules, not just these objects
    assert got["before"] == dict.fromkeys(got["before"], 0xFFFFFFFF)
    assert got["after"] == got["before"]  # five more references each, nothing written
    assert got["result"] == "hi answered"  # still usable afterwards


@NEEDS_IMMORTAL
def test_a_forked_child_reading_the_heap_copies_a_fraction_of_what_it_copies_without() -> None:
    script = """
        import gc, json, os, sys
        from worker import immortal

        def private_kib():
            with open("/proc/self/smaps_rollup") as rollup:
                fields = dict(line.split(":", 1) for line in rollup if ":" in line)
            return sum(int(fields[key].split()[0]) for key in ("Private_Clean", "Private_Dirty"))

        data = [{"id": str(number) * 3, "value": [float(number)]} for number in range(60_000)]
        gc.collect()
        if sys.argv[-1] == "on":
            immortal.immortalize_heap()
        gc.freeze()
        read, write = os.pipe()
        child = os.fork()
        if child == 0:
            start = private_kib()
            total = sum(len(row["id"]) + row["value"][0] for row in data)  # reads only
            os.write(write, json.dumps(private_kib() - start).encode())
            os._exit(0)
        os.waitpid(child, 0)
        print(json.dumps({"copied_kib": json.loads(os.read(read, 100))}))
    """

    def copied(mode: str) -> int:
        done = subprocess.run([sys.executable, "-c", textwrap.dedent(script), mode],
                              capture_output=True, text=True, timeout=120, check=True)
        return json.loads(done.stdout.splitlines()[-1])["copied_kib"]

    without, with_immortal = copied("off"), copied("on")
    assert without > 8_000  # ~240,000 objects read: their pages copied for the counts
    assert with_immortal < without / 10


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.11 behaviour")
def test_on_311_nothing_is_marked() -> None:
    assert run("""
        import json
        from worker import immortal
        print(json.dumps({"marked": immortal.immortalize_heap()}))
    """) == {"marked": 0}
