"""Which `python` handler targets a bot may name, and resolving one to its callable.

A python target is code the service runs in its workers, so it is the
operator's code: an admin may name any target; another owner only targets
whose module sits under one of the operator's prefixes (setting
`python_modules`, empty by default, so python handlers are admin-only until
the operator opens a package). The API imports and checks the target at
create/patch (`check_target`), so a bad one is a 400 instead of a dead
letter at the first event; the worker resolves it again with `resolve`.
"""

import importlib
from collections.abc import Callable
from typing import Any


class TargetRefused(ValueError):
    """The target is malformed, not allowed for this owner, or does not resolve to a callable."""


def split_target(target: str) -> tuple[str, str]:
    """('pkg.module', 'function.path') of 'pkg.module:function.path'; raises TargetRefused."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise TargetRefused(f"python target {target!r} is not 'module:function'")
    return module_name, attr


def allowed_module(module_name: str, prefixes: tuple[str, ...]) -> bool:
    """Whether `module_name` is one of `prefixes` or a submodule of one (dotted, not textual)."""
    return any(
        module_name == prefix or module_name.startswith(prefix.rstrip(".") + ".")
        for prefix in (p.strip() for p in prefixes) if prefix
    )


def check_target(target: str, prefixes: tuple[str, ...], trusted: bool) -> Callable[..., Any]:
    """Refuse a target the owner may not name, else import it; returns the callable.

    `trusted`: the owner is an admin. Raises TargetRefused with a reason fit for a 400.
    """
    module_name, _ = split_target(target)
    if not trusted and not allowed_module(module_name, prefixes):
        if not any(p.strip() for p in prefixes):
            raise TargetRefused("python handlers are admin-only on this service"
                                " (the operator has set no python_modules)")
        listed = ", ".join(p for p in prefixes if p.strip())
        raise TargetRefused(f"python target module {module_name!r} is not under an allowed"
                            f" prefix ({listed})")
    return resolve(target)


def resolve(target: str) -> Callable[..., Any]:
    """Import 'module:function' and return the callable; raises TargetRefused."""
    module_name, attr = split_target(target)
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise TargetRefused(f"python target {target!r}: {exc}") from None
    except Exception as exc:
        raise TargetRefused(f"python target {target!r}: importing it failed:"
                            f" {type(exc).__name__}: {exc}") from None
    if not callable(obj):
        raise TargetRefused(f"python target {target!r} is not callable")
    return obj
