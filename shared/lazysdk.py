"""Run the SDK's package `__init__` files only when something reads what they define.

Importing any part of lark_oapi runs `lark_oapi/__init__.py`, which imports every API
package (`from .api import *`, `from .client import Client`), and `lark_oapi.ws.client`
imports `EventDispatcherHandler`, which star-imports the event processors of 26 API
packages, each of whose `__init__` imports all of its models and resources
(lark_oapi 1.7.5: `lark_oapi/__init__.py`, `lark_oapi/event/dispatcher_handler.py`,
`lark_oapi/api/*/v*/__init__.py`). That is ~10,600 modules and 4-5 s of CPU in every
process that touches the SDK; what larkfleet uses (the ws client, core, the event
dispatcher and the im v1 models) is ~940 modules and under 1 s.

With `install()` done, `lark_oapi` and the packages under `lark_oapi.api` are created
without running their `__init__`. Importing a submodule needs only the package's
`__path__`, so `import lark_oapi.ws.client` no longer pays for its siblings. The first
read of a name the package does not hold yet (`lark_oapi.Client`, `from lark_oapi.api.im.v1
import CreateMessageRequest`, the `__all__` a star import reads) runs the `__init__` then,
once, and returns the name: what code sees is the same, only later. Plain modules are
never deferred, and no package outside those (the vendored protobuf's namespace `__init__`
extends `__path__`, so it must run at import); tests/test_lazysdk.py checks that every
deferred `__init__` only imports.

`load_all()` runs every deferred `__init__` until none is left, which reaches the same
modules as an eager `import lark_oapi`: the zygote does that when told `all`, so that
tenants' handlers that use the whole SDK share its pages (worker/preload.py). By default
(`used`) it does not: a zygote of ~66 MB instead of ~196 MB makes every fork copy a third
of the page table, and a 1,000-bot connect took 29 s instead of 34-37 s (bench/NOTES.md).
A worker whose handler then reads an SDK name the zygote left deferred runs that package's
`__init__` itself: `on_init` lets it say so in its log (worker/main.py).
"""

import importlib.abc
import importlib.machinery
import os
import sys
import threading
import types
from collections.abc import Callable, Mapping
from importlib.machinery import ModuleSpec
from typing import Any


def _is_deferred(name: str) -> bool:
    """`lark_oapi` itself and every package under `lark_oapi.api` (generated code whose
    `__init__` files only import)."""
    return name in ("lark_oapi", "lark_oapi.api") or name.startswith("lark_oapi.api.")


PRELOAD_SETTING = "LARKFLEET_SDK_PRELOAD"
"""Environment variable read by the zygote: `used` (the default) loads only the modules
larkfleet imports before workers are forked; `all` the whole SDK (worker/preload.py)."""
PRELOAD_CHOICES = ("used", "all")
PRELOAD_DEFAULT = "used"


def preload_choice(environ: Mapping[str, str] | None = None) -> str:
    """The zygote's SDK preload, `used` or `all`, from `environ` (default os.environ;
    unset means PRELOAD_DEFAULT). Raises ValueError naming the variable for any other value."""
    value = (os.environ if environ is None else environ).get(PRELOAD_SETTING, PRELOAD_DEFAULT)
    choice = value.strip().lower()
    if choice not in PRELOAD_CHOICES:
        raise ValueError(f"{PRELOAD_SETTING}: expected used or all, got {value!r}")
    return choice


_load_lock = threading.RLock()
"""Held while a package's `__init__` runs: another thread that reads a missing name of a
deferred package waits for it instead of seeing the package half-initialised."""
_running: set[str] = set()  # packages whose __init__ this lock's holder is running

on_init: Callable[[str], None] | None = None
"""When set, called with a package's name (under the lock, in the reading thread) each time
a deferred `__init__` starts to run, so the package a read asked for comes before those its
`__init__` imports: a worker sets it to tell its log what its handler loaded that the
zygote did not preload. It must not raise."""


class _DeferredPackage(types.ModuleType):
    """A package whose `__init__` has not run: `__getattr__` is called only for names the
    module does not hold, and runs it then."""

    def __getattr__(self, name: str) -> Any:
        _run_init(self)
        return types.ModuleType.__getattribute__(self, name)

    def __dir__(self) -> list[str]:
        _run_init(self)  # dir() and inspect list what the __init__ defines, as before
        return types.ModuleType.__dir__(self)


class _DeferringLoader(importlib.abc.Loader):
    """Wraps the path finder's loader: creates the module the same way, defers its
    `exec_module`, and answers everything else (resources, source) as the real one."""

    def __init__(self, real: importlib.abc.Loader) -> None:
        self.real = real

    def create_module(self, spec: ModuleSpec) -> types.ModuleType | None:
        return self.real.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        module.__class__ = _DeferredPackage

    def __getattr__(self, name: str) -> Any:
        if name == "real":  # not set yet (a copy being made): no recursion through here
            raise AttributeError(name)
        return getattr(self.real, name)


class _DeferringFinder(importlib.abc.MetaPathFinder):
    """Finds SDK packages as the path finder does and gives them the deferring loader."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> ModuleSpec | None:
        if not _is_deferred(fullname):
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None or spec.submodule_search_locations is None or spec.loader is None:
            return spec
        spec.loader = _DeferringLoader(spec.loader)
        return spec


def _run_init(module: types.ModuleType) -> None:
    with _load_lock:
        if type(module) is not _DeferredPackage or module.__name__ in _running:
            return  # ran while this thread waited, or is running below us in this thread
        _running.add(module.__name__)
        try:
            if on_init is not None:
                on_init(module.__name__)
            module.__spec__.loader.real.exec_module(module)
        finally:
            _running.discard(module.__name__)
        module.__class__ = types.ModuleType  # only once it ran: a failure is tried again


def install() -> None:
    """Defer the SDK's package `__init__` files in this process from now on. Idempotent;
    modules imported before the call stay as they are. Raises nothing."""
    if not any(isinstance(finder, _DeferringFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _DeferringFinder())


def deferred() -> list[str]:
    """Names of the SDK packages imported but whose `__init__` has not run yet."""
    return sorted(name for name, module in list(sys.modules.items())
                  if type(module) is _DeferredPackage)


def load_all() -> int:
    """Import `lark_oapi` and run every deferred `__init__`, and those of the packages they
    import, until none is left: the modules an eager `import lark_oapi` loads. Returns how
    many `__init__` files ran. Raises what a package's `__init__` raises."""
    import lark_oapi  # noqa: F401

    ran = 0
    while pending := [sys.modules[name] for name in deferred()]:
        for module in pending:
            _run_init(module)
            ran += 1
    return ran
