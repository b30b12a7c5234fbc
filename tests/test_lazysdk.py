"""shared/lazysdk.py: the SDK's package `__init__` files run when their names are read,
the whole SDK stays reachable, and the zygote loads all of it when told `all`."""

import ast
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

from shared import lazysdk

SDK_ROOT = Path(lazysdk.__file__).parents[1]


def run_python(code: str, **env: str) -> dict:
    """Runs `code` in a fresh interpreter at the project root; returns the JSON it prints."""
    result = subprocess.run([sys.executable, "-c", code], cwd=SDK_ROOT, capture_output=True,
                            text=True, timeout=90, env={**os.environ, **env}, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


COUNT = ("import json, sys; print(json.dumps(sorted(m for m in sys.modules"
         " if m == 'lark_oapi' or m.startswith('lark_oapi.'))))")


def test_every_deferred_init_only_imports() -> None:
    """Deferring is sound only for an `__init__` whose sole effect is binding names: one
    that set `__path__` or registered something would be missed until a name is read."""
    package_root = Path(importlib.util.find_spec("lark_oapi").submodule_search_locations[0])
    inits = [package_root / "__init__.py", *sorted((package_root / "api").rglob("__init__.py"))]
    assert len(inits) > 100
    for init in inits:
        for statement in ast.parse(init.read_text(encoding="utf-8")).body:
            docstring = isinstance(statement, ast.Expr) and isinstance(statement.value,
                                                                       ast.Constant)
            assert isinstance(statement, ast.Import | ast.ImportFrom) or docstring, (
                f"{init}:{statement.lineno} does more than import")


def sdk_files() -> int:
    return sum(1 for _ in Path(importlib.util.find_spec("lark_oapi").submodule_search_locations[0])
               .rglob("*.py"))


def test_larkfleets_imports_load_a_fifth_and_names_load_from_any_thread() -> None:
    """Four threads read a name of a package none has loaded: each waits for the one that
    runs its `__init__` (a package switched to plain before its `__init__` finished let
    the others see it half-made: AttributeError)."""
    used, got, listed = run_python(
        "import sys, threading, worker.main, worker.webhook, simulator.frames, lark_oapi\n"
        "used = [m for m in sys.modules if m.startswith('lark_oapi')]\n"
        "got = []\n"
        "def read(): got.append(lark_oapi.api.acs.v1.P2AcsUserUpdatedV1.__name__)\n"
        "threads = [threading.Thread(target=read) for _ in range(4)]\n"
        "[t.start() for t in threads]; [t.join() for t in threads]\n"
        "import lark_oapi.api.docs.v1.version as v\n"
        "listed = 'GetContentRequest' in dir(sys.modules['lark_oapi.api.docs.v1'])\n"
        "import json; print(json.dumps([len(used), got, listed]))")
    assert used < sdk_files() / 5, used
    assert got == ["P2AcsUserUpdatedV1"] * 4
    assert listed, "dir() of a deferred package lists what its __init__ defines"


def test_the_zygote_loads_what_an_eager_import_does_when_told_all() -> None:
    """A tenant's handler that uses the whole SDK can share its pages: told `all`, the zygote
    loads every module an eager `import lark_oapi` does, and the package's names are there
    (`used`, the default, stops at larkfleet's own imports)."""
    eager = run_python("import lark_oapi\n" + COUNT)
    assert len(eager) > sdk_files() / 2
    result = subprocess.run(
        [sys.executable, "-c", "import worker.preload, lark_oapi\n"
         "from lark_oapi.api.contact.v3 import GetUserRequest\n"
         "print(lark_oapi.Client.__name__, lark_oapi.EventDispatcherHandler.__name__,"
         " GetUserRequest.__name__)\n" + COUNT], cwd=SDK_ROOT,
        env={**os.environ, lazysdk.PRELOAD_SETTING: "all", "LARKFLEET_IMMORTAL_OBJECTS": "0"},
        capture_output=True, text=True, timeout=90, check=True)
    names, loaded = result.stdout.strip().splitlines()[-2:]
    assert json.loads(loaded) == eager
    assert names == "Client EventDispatcherHandler GetUserRequest"


def test_on_init_hears_each_package_init_once_the_one_read_first() -> None:
    """What a worker's warning about SDK modules its handler loaded rests on: the package
    read, then the deferred packages its `__init__` imports; a second read, or a plain
    module, runs nothing."""
    seen = run_python(
        "from shared import lazysdk\n"
        "lazysdk.install()\n"
        "seen = []\n"
        "import lark_oapi.ws.client, lark_oapi.api.docs.v1.version\n"
        "lazysdk.on_init = seen.append\n"
        "import lark_oapi.api.docs.v1 as docs\n"
        "docs.GetContentRequest, docs.GetContentRequest, lark_oapi.api.docs.v1.version\n"
        "import json; print(json.dumps(seen))")
    assert seen == ["lark_oapi.api.docs.v1", "lark_oapi.api.docs.v1.model"]


def test_a_bad_preload_value_names_the_variable() -> None:
    assert lazysdk.preload_choice({}) == "used"
    assert lazysdk.preload_choice({"LARKFLEET_SDK_PRELOAD": " Used "}) == "used"
    try:
        lazysdk.preload_choice({"LARKFLEET_SDK_PRELOAD": "most"})
    except ValueError as error:
        assert "LARKFLEET_SDK_PRELOAD" in str(error) and "'most'" in str(error)
    else:
        raise AssertionError("accepted 'most'")
