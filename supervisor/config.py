"""The effective configuration of `larkfleet serve`: defaults < TOML file < env < flags.

Every setting has an environment variable `LARKFLEET_<NAME>` (supervisor
tunables by their field name, backoff ones as `LARKFLEET_BACKOFF_<NAME>`) and
a key in the optional TOML file (`--config` or LARKFLEET_CONFIG):

    data_dir = "/var/lib/larkfleet"
    port = 13000
    handler_path = "/srv/larkfleet-handlers"
    [supervisor]
    heartbeat_timeout = 5
    [backoff]
    cap = 60
    [security]
    url_allow = ["10.1.2.0/24", "hooks.internal"]
    python_modules = ["acme_bots"]

An unknown key or a value of the wrong type stops the start with an error
naming it, rather than being silently ignored.
"""

import argparse
import math
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import msgspec

from shared import lazysdk
from shared.botconfig import ProxySetting, mask_proxy
from shared.ports import PORT_EXPECTED, PORTS, SERVICE_URL_EXPECTED, is_service_url
from shared.security import SecurityPolicy
from shared.urlpolicy import UrlPolicy, check_policy_entries
from store.postgres import url
from supervisor.backoff import BackoffPolicy
from supervisor.cluster.node import LeaseTimings
from supervisor.placement import default_node_id, node_host
from supervisor.settings import SupervisorSettings

SECRET_ENV = ("LARKFLEET_ADMIN_TOKEN", "LARKFLEET_SECRET_KEY")
TOP_LEVEL: dict[str, type] = {
    "data_dir": str, "host": str, "port": int, "log_level": str, "handler_path": str,
    "database_url": str, "node_id": str, "node_address": str,
}
DEFAULTS: dict[str, Any] = {
    "data_dir": "./data", "host": "127.0.0.1", "port": 13000, "log_level": "INFO",
    "handler_path": "", "database_url": "", "node_id": "", "node_address": "",
}


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class ServeConfig:
    data_dir: Path
    host: str
    port: int
    log_level: str
    settings: SupervisorSettings
    handler_path: tuple[Path, ...] = ()
    """Folders searched first for `python` handler modules (like PYTHONPATH, `:`-separated)."""
    database_url: str = ""
    """Cluster mode when set (postgresql://...); the embedded SQLite registry otherwise."""
    node_id: str = ""
    """This node's id (default: the hostname)."""
    node_address: str = ""
    """The URL other nodes reach this node's API at (default http://<hostname>:<port>)."""


def _convert(value: Any, kind: type, name: str) -> Any:
    try:
        if isinstance(value, bool):
            raise ValueError
        return kind(value)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{name}: expected {kind.__name__}, got {value!r}") from error


def _table(data: Mapping[str, Any], name: str, allowed: set[str]) -> Mapping[str, Any]:
    unknown = set(data) - allowed
    if unknown:
        raise ConfigError(f"unknown key(s) in {name}: {', '.join(sorted(unknown))}")
    return data


def _read_file(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"config file {path}: {error}") from error


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
"""What `log_level` and `worker_log_level` take (any case): the stdlib's level names."""

NOT_BELOW_ZERO = {"lease_max_moves"}
"""Integer settings for which 0 means something (no hand-overs); the others need >= 1."""


def _rule(name: str, kind: type) -> tuple[Callable[[Any], bool], str]:
    """(test, what it expects) for a converted value, so a bad one stops the start before
    anything is touched instead of failing later (a port taken modulo 65536, a traceback
    from logging, a worker that never connects)."""
    if name == "port":
        return (lambda value: value in PORTS, PORT_EXPECTED)
    if name.endswith("log_level"):
        return (lambda value: value.strip().upper() in LOG_LEVELS,
                f"one of {', '.join(LOG_LEVELS)}")
    if kind is float:
        return (lambda value: math.isfinite(value) and value > 0, "a number > 0")
    if kind is int:
        low = 0 if name in NOT_BELOW_ZERO else 1
        return (lambda value: value >= low, f"an integer >= {low}")
    return (lambda value: True, "")


def _layer(
    name: str, kind: type, default: Any, file: Mapping[str, Any], env_name: str,
    environ: Mapping[str, str], flag: Any = None,
) -> Any:
    """The value from the flag, else the variable, else the file, else the default; raises
    ConfigError naming the flag, variable or key whose value is of the wrong type or range."""
    if flag is not None:
        source, raw = f"--{name.replace('_', '-')}", flag
    elif env_name in environ:
        source, raw = env_name, environ[env_name]
    elif name in file:
        source, raw = name, file[name]
    else:
        return default
    value = _convert(raw, kind, source)
    test, expected = _rule(name, kind)
    if not test(value):
        raise ConfigError(f"{source}: expected {expected}, got {raw!r}")
    return value


def load(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> ServeConfig:
    """Resolve every setting once, at start; raises ConfigError naming a bad key or value."""
    env = os.environ if environ is None else environ
    file = _read_file(getattr(args, "config", None) or env.get("LARKFLEET_CONFIG"))
    _table(file, "the config file", set(TOP_LEVEL) | {"supervisor", "backoff", "security"})
    top = {
        key: _layer(key, kind, DEFAULTS[key], file, f"LARKFLEET_{key.upper()}", env,
                    getattr(args, key, None))
        for key, kind in TOP_LEVEL.items()
    }
    section = _table(file.get("supervisor", {}), "[supervisor]",
                     {f.name for f in fields(SupervisorSettings)} - {"backoff", "security"})
    defaults = SupervisorSettings()
    tunables = {
        f.name: _layer(f.name, type(getattr(defaults, f.name)), getattr(defaults, f.name),
                       section, f"LARKFLEET_{f.name.upper()}", env)
        for f in fields(SupervisorSettings) if f.name not in ("backoff", "security")
    }
    policy_keys = {f.name for f in fields(BackoffPolicy)}
    backoff_file = _table(file.get("backoff", {}), "[backoff]", policy_keys)
    policy_defaults = BackoffPolicy()
    policy = BackoffPolicy(**{
        f.name: _layer(f.name, type(getattr(policy_defaults, f.name)),
                       getattr(policy_defaults, f.name), backoff_file,
                       f"LARKFLEET_BACKOFF_{f.name.upper()}", env)
        for f in fields(BackoffPolicy)
    })
    _check_proxy(tunables["proxy"])
    try:
        lazysdk.preload_choice(env)  # read by the zygote; refused here, before the start
    except ValueError as error:
        raise ConfigError(str(error)) from error
    tunables["worker_log_level"] = tunables["worker_log_level"].strip().upper()
    database_url = top["database_url"].strip()
    if database_url:
        try:
            url.check(database_url)
        except url.DatabaseUrlError as error:
            raise ConfigError(str(error)) from error
    if top["node_address"] and not is_service_url(top["node_address"]):
        raise ConfigError(f"node_address (--node-address, LARKFLEET_NODE_ADDRESS): expected"
                          f" {SERVICE_URL_EXPECTED}, got {top['node_address']!r}")
    node_id = top["node_id"].strip() or default_node_id()
    host_for_peers = top["host"] if top["host"] not in ("0.0.0.0", "::", "") else node_host()
    try:
        settings = SupervisorSettings(backoff=policy, security=_security(file, env), **tunables)
        if database_url:
            LeaseTimings.of(settings)
    except ValueError as error:
        raise ConfigError(str(error)) from error
    return ServeConfig(
        data_dir=Path(top["data_dir"]).resolve(),
        host=top["host"],
        port=top["port"],
        log_level=top["log_level"].strip().upper(),
        settings=settings,
        handler_path=tuple(
            Path(part).resolve() for part in top["handler_path"].split(os.pathsep) if part
        ),
        database_url=database_url,
        node_id=node_id,
        node_address=top["node_address"] or f"http://{host_for_peers}:{top['port']}",
    )


def _check_proxy(value: str) -> None:
    """The global proxy takes what a bot's `options.proxy` takes (shared/botconfig.py)."""
    if value:
        try:
            msgspec.convert(value, ProxySetting)
        except msgspec.ValidationError as error:
            raise ConfigError(f"proxy: expected `direct` or a proxy URL, got {value!r}") from error


SECURITY_KEYS = {
    "url_allow": "LARKFLEET_URL_ALLOW",
    "url_allow_public": "LARKFLEET_URL_ALLOW_PUBLIC",
    "python_modules": "LARKFLEET_PYTHON_MODULES",
    "webhook_max_age": "LARKFLEET_WEBHOOK_MAX_AGE",
}
"""The [security] table's keys and their variables (lists as comma-separated text)."""


def _security(file: Mapping[str, Any], env: Mapping[str, str]) -> SecurityPolicy:
    """The [security] table (docs/security.md); raises ConfigError naming a bad key or value."""
    table = _table(file.get("security", {}), "[security]", set(SECURITY_KEYS))
    raw = {key: env[var] if var in env else table.get(key) for key, var in SECURITY_KEYS.items()}
    allow = _strings(raw["url_allow"], "url_allow")
    try:
        check_policy_entries(allow)
    except ValueError as error:
        raise ConfigError(str(error)) from error
    public = raw["url_allow_public"]
    if isinstance(public, str):
        if public.strip().lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ConfigError(f"url_allow_public: expected true or false, got {public!r}")
        public = public.strip().lower() in ("true", "1", "yes")
    elif public is not None and not isinstance(public, bool):
        raise ConfigError(f"url_allow_public: expected true or false, got {public!r}")
    max_age = raw["webhook_max_age"]
    if max_age is not None:
        max_age = _convert(max_age, float, "webhook_max_age")
        if max_age <= 0:
            raise ConfigError(f"webhook_max_age: expected seconds > 0, got {max_age!r}")
    return SecurityPolicy(
        urls=UrlPolicy(allow=allow, allow_public=True if public is None else public),
        python_modules=_strings(raw["python_modules"], "python_modules"),
        webhook_max_age=max_age,
    )


def _strings(value: Any, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(v.strip() for v in value if v.strip())
    raise ConfigError(f"{name}: expected a list of strings, got {value!r}")


def render(config: ServeConfig, environ: Mapping[str, str] | None = None) -> str:
    """The effective configuration as TOML, secrets masked (for --print-config)."""
    env = os.environ if environ is None else environ

    def line(key: str, value: Any) -> str:
        return f"{key} = {value}" if isinstance(value, int | float) else f'{key} = "{value}"'

    settings = config.settings
    lines = [line("data_dir", config.data_dir), line("host", config.host),
             line("port", config.port), line("log_level", config.log_level),
             line("handler_path", os.pathsep.join(map(str, config.handler_path))),
             line("database_url", url.masked(config.database_url)),
             line("node_id", config.node_id), line("node_address", config.node_address),
             "", "[supervisor]"]
    lines += [line(f.name, mask_proxy(settings.proxy) if f.name == "proxy"
                   else getattr(settings, f.name))
              for f in fields(SupervisorSettings) if f.name not in ("backoff", "security")]
    lines += ["", "[backoff]"]
    lines += [line(f.name, getattr(settings.backoff, f.name)) for f in fields(BackoffPolicy)]
    security = settings.security
    max_age = security.webhook_max_age
    lines += ["", "[security]",
              f"url_allow = {list(security.urls.allow)!r}".replace("'", '"'),
              f"url_allow_public = {str(security.urls.allow_public).lower()}",
              f"python_modules = {list(security.python_modules)!r}".replace("'", '"'),
              "# webhook_max_age: the dedup retention" if max_age is None
              else line("webhook_max_age", max_age)]
    lines += ["", "# secrets (masked)"]
    lines += [f"# {name} = {'***' if env.get(name) else '(not set)'}" for name in SECRET_ENV]
    return "\n".join(lines) + "\n"
