"""The pure policies behind issue 17: URL rules, python targets, admin tokens, [security]."""

import argparse

import pytest

from shared.pytarget import TargetRefused, allowed_module, check_target
from shared.urlpolicy import UrlPolicy, UrlRefused
from supervisor.admintoken import weakness
from supervisor.config import ConfigError, load

TENANT = UrlPolicy(service_port=13000)
ADMIN = TENANT.for_owner(True)


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/", "http://100.100.100.200/",
    "http://[::ffff:169.254.169.254]/", "http://[fd00:ec2::254]/", "http://127.0.0.1:13000/api",
    "http://0.0.0.0:13000/", "http://[::1]:13000/",
])
def test_refused_for_everyone(url: str) -> None:
    for policy in (TENANT, ADMIN):
        with pytest.raises(UrlRefused):
            policy.check_url(url)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/", "http://10.1.2.3/", "http://[fc00::1]/",
                                 "http://192.168.1.1/", "ftp://93.184.215.14/", "http:///x"])
def test_tenant_refused_internal(url: str) -> None:
    with pytest.raises(UrlRefused):
        TENANT.check_url(url)


def test_admin_reaches_internal_tenant_public_and_the_allow_list() -> None:
    assert ADMIN.check_url("http://127.0.0.1:8080/hook") == ("127.0.0.1", 8080)
    assert TENANT.check_url("https://93.184.215.14/v1") == ("93.184.215.14", 443)
    listed = UrlPolicy(allow=("10.1.0.0/16", ".corp.example", "169.254.169.254"))
    listed.check_url("http://10.1.9.9/")
    listed.check_address("hooks.corp.example", "10.9.9.9", 80)
    listed.check_url("http://169.254.169.254/")
    with pytest.raises(UrlRefused):
        listed.check_address("corp.example.evil", "10.9.9.9", 80)
    with pytest.raises(UrlRefused):
        UrlPolicy(allow_public=False).check_url("http://93.184.215.14/")


def test_python_prefixes_are_dotted_not_textual() -> None:
    assert allowed_module("acme.bots.reply", ("acme.bots",))
    assert allowed_module("acme", ("acme",))
    assert not allowed_module("acmex", ("acme",))
    assert not allowed_module("os", ())
    with pytest.raises(TargetRefused, match="admin-only"):
        check_target("json:dumps", (), trusted=False)
    assert check_target("json:dumps", ("json",), trusted=False).__name__ == "dumps"
    with pytest.raises(TargetRefused, match="not callable"):
        check_target("json:__name__", (), trusted=True)


@pytest.mark.parametrize("token,weak", [
    ("", True), ("change-me", True), ("CHANGE_ME_CHANGE_ME_CHANGE_ME_1234567", True),
    ("x" * 40, True), ("lf_" + "Zq8v2Kx9LmP4tR7wYb3nHc6dJf1gSa5e", False),
    ("x", True), ("REPLACE-WITH-A-LONG-RANDOM-TOKEN", True),
    ("abababababababababababababababab", True), ("short-but-random-7f3a9c", True),
])
def test_admin_token_weakness(token: str, weak: bool) -> None:
    assert (weakness(token) is not None) is weak


def test_security_table_from_file_and_env(tmp_path) -> None:
    path = tmp_path / "larkfleet.toml"
    path.write_text('[security]\nurl_allow = ["10.0.0.0/8"]\npython_modules = ["acme"]\n'
                    "webhook_max_age = 300\n")
    args = argparse.Namespace(config=str(path))
    policy = load(args, {}).settings.security
    assert (policy.urls.allow, policy.python_modules, policy.webhook_max_age) == (
        ("10.0.0.0/8",), ("acme",), 300.0)
    env = {"LARKFLEET_URL_ALLOW": "hooks.internal, 192.168.0.0/16",
           "LARKFLEET_URL_ALLOW_PUBLIC": "false"}
    policy = load(args, env).settings.security
    assert policy.urls.allow == ("hooks.internal", "192.168.0.0/16")
    assert policy.urls.allow_public is False
    for bad in ({"LARKFLEET_URL_ALLOW": "http://x/"}, {"LARKFLEET_WEBHOOK_MAX_AGE": "-1"},
                {"LARKFLEET_URL_ALLOW_PUBLIC": "maybe"}):
        with pytest.raises(ConfigError):
            load(args, bad)


def test_rotated_logs_are_private_under_the_serve_umask(tmp_path) -> None:
    """Rotation opens new files itself: the umask `larkfleet serve` sets covers them."""
    import logging
    import os
    import stat

    from shared.logs import SizeRotatingFileHandler
    from supervisor.serve import PRIVATE_UMASK

    previous = os.umask(PRIVATE_UMASK)
    try:
        handler = SizeRotatingFileHandler(tmp_path / "bot.log", maxBytes=64, backupCount=2)
        record = logging.LogRecord("t", logging.INFO, __file__, 1, "x" * 80, None, None)
        for _ in range(3):
            handler.emit(record)
        handler.close()
    finally:
        os.umask(previous)
    files = sorted(tmp_path.glob("bot.log*"))
    assert len(files) == 3
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
