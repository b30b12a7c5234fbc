"""`larkfleet serve` configuration: defaults < TOML file < environment < flags."""

from pathlib import Path

import pytest

from supervisor.cli import build_parser
from supervisor.config import ConfigError, load, render
from supervisor.settings import SupervisorSettings


def serve_args(*argv: str):
    return build_parser().parse_args(["serve", *argv])


def test_defaults_match_the_architecture() -> None:
    config = load(serve_args(), environ={})
    assert (config.host, config.port, config.data_dir.name) == ("127.0.0.1", 13000, "data")
    assert config.settings == SupervisorSettings()
    assert config.settings.heartbeat_timeout == 5.0
    assert config.settings.backoff.cap == 60.0


def test_file_then_environment_then_flags(tmp_path: Path) -> None:
    file = tmp_path / "larkfleet.toml"
    file.write_text(
        'port = 14000\nhost = "0.0.0.0"\n[supervisor]\nheartbeat_timeout = 7\n'
        "stop_grace = 20\n[backoff]\ncap = 30\n"
    )
    env = {"LARKFLEET_PORT": "15000", "LARKFLEET_STOP_GRACE": "12"}
    config = load(serve_args("--config", str(file)), environ=env)
    assert config.port == 15000
    assert config.host == "0.0.0.0"
    assert config.settings.heartbeat_timeout == 7.0
    assert config.settings.stop_grace == 12.0
    assert config.settings.backoff.cap == 30.0
    assert load(serve_args("--config", str(file), "--port", "16000"), environ=env).port == 16000


def test_config_file_from_the_environment(tmp_path: Path) -> None:
    file = tmp_path / "c.toml"
    file.write_text("port = 14001\n")
    assert load(serve_args(), environ={"LARKFLEET_CONFIG": str(file)}).port == 14001


@pytest.mark.parametrize(
    ("text", "env", "named"),
    [
        ("bogus = 1\n", {}, "bogus"),
        ("[supervisor]\nheartbeat = 1\n", {}, "heartbeat"),
        ("[backoff]\nbase = 'x'\n", {}, "base"),
        ("port = true\n", {}, "port"),
        ("", {"LARKFLEET_PORT": "tcp://10.0.0.1:13000"}, "LARKFLEET_PORT"),
        ("", {"LARKFLEET_BACKOFF_FLAP_COUNT": "many"}, "LARKFLEET_BACKOFF_FLAP_COUNT"),
        ("port = [", {}, "config file"),
        ("", {"LARKFLEET_WEBHOOK_MAX_INFLIGHT": "0"}, "LARKFLEET_WEBHOOK_MAX_INFLIGHT"),
        ("port = 99999\n", {}, "port: expected a port from 0 to 65535"),
        ("", {"LARKFLEET_PORT": "70000"}, "LARKFLEET_PORT: expected a port"),
        ("", {"LARKFLEET_PORT": "-1"}, "LARKFLEET_PORT: expected a port"),
        ("log_level = 'LOUD'\n", {}, "log_level: expected one of DEBUG, INFO"),
        ("", {"LARKFLEET_LOG_LEVEL": "LOUD"}, "LARKFLEET_LOG_LEVEL"),
        ("", {"LARKFLEET_WORKER_LOG_LEVEL": "chatty"}, "LARKFLEET_WORKER_LOG_LEVEL"),
        ("[supervisor]\nheartbeat_timeout = -1\n", {}, "heartbeat_timeout: expected a number > 0"),
        ("", {"LARKFLEET_TICK": "nan"}, "LARKFLEET_TICK"),
        ("", {"LARKFLEET_BACKOFF_CAP": "0"}, "LARKFLEET_BACKOFF_CAP"),
        ("", {"LARKFLEET_EVENT_MAX_ATTEMPTS": "0"}, "LARKFLEET_EVENT_MAX_ATTEMPTS"),
        ("", {"LARKFLEET_NODE_ADDRESS": "notaurl"}, "LARKFLEET_NODE_ADDRESS"),
        ("node_address = 'http://h:99999'\n", {}, "node_address"),
    ],
)
def test_bad_settings_are_refused_naming_them(
    tmp_path: Path, text: str, env: dict[str, str], named: str
) -> None:
    file = tmp_path / "c.toml"
    file.write_text(text)
    with pytest.raises(ConfigError, match=named):
        load(serve_args("--config", str(file)), environ=env)


@pytest.mark.parametrize(("flag", "value"), [("--port", "99999"), ("--port", "-1"),
                                             ("--log-level", "LOUD")])
def test_bad_flags_are_refused_naming_them(flag: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"^{flag}: expected"):
        load(serve_args(flag, value), environ={})


def test_ports_and_levels_that_are_right() -> None:
    config = load(serve_args("--port", "0", "--log-level", "debug"),
                  environ={"LARKFLEET_WORKER_LOG_LEVEL": " warning"})
    assert (config.port, config.log_level, config.settings.worker_log_level) == (
        0, "DEBUG", "WARNING")
    assert load(serve_args("--port", "65535"), environ={}).port == 65535


def test_print_config_masks_secrets() -> None:
    env = {"LARKFLEET_ADMIN_TOKEN": "very-secret-admin", "LARKFLEET_SECRET_KEY": "k" * 44}
    text = render(load(serve_args(), environ=env), environ=env)
    assert "very-secret-admin" not in text and "k" * 44 not in text
    assert "LARKFLEET_ADMIN_TOKEN = ***" in text
    assert "heartbeat_timeout = 5.0" in text


def test_global_proxy_is_checked_and_masked() -> None:
    config = load(serve_args(), environ={"LARKFLEET_PROXY": "http://u:pw@proxy.internal:3128"})
    assert config.settings.proxy == "http://u:pw@proxy.internal:3128"
    assert 'proxy = "http://u:***@proxy.internal:3128"' in render(config, {})
    assert load(serve_args(), environ={"LARKFLEET_PROXY": "direct"}).settings.proxy == "direct"
    with pytest.raises(ConfigError, match="proxy"):
        load(serve_args(), environ={"LARKFLEET_PROXY": "ftp://proxy"})


@pytest.mark.parametrize("argv", [["sim", "--port", "99999"], ["sim", "--port", "-1"],
                                  ["demo", "--port", "70000"], ["demo", "--sim-port", "-1"]])
def test_every_port_flag_is_checked_at_parse_time(argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    assert exit_.value.code == 2
    assert f"argument {argv[1]}: '{argv[2]}' is not a port from 0 to 65535" in (
        capsys.readouterr().err)
    assert build_parser().parse_args([argv[0], argv[1], "0"])


@pytest.mark.parametrize(("argv", "expected"), [
    (["connect", "b", "--timeout", "-1"], "--timeout: '-1' is not a number of seconds > 0"),
    (["connect", "b", "--timeout", "nan"], "argument --timeout: 'nan' is not a number of seconds"),
    (["connect", "b", "--timeout", "0"], "argument --timeout: '0' is not a number of seconds > 0"),
    (["logs", "b", "-n", "-5"], "argument -n/--tail: '-5' is not an integer >= 0"),
    (["audit", "-n", "0"], "argument -n/--limit: '0' is not an integer >= 1"),
    (["audit", "--before", "x"], "argument --before: 'x' is not an integer >= 1"),
])
def test_client_number_flags_are_checked_at_parse_time(argv: list[str], expected: str,
                                                       capsys) -> None:
    """A negative `connect --timeout` was taken as is: --wait then gave up at once."""
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    assert exit_.value.code == 2
    assert expected in capsys.readouterr().err
    assert build_parser().parse_args([*argv[:-1], "1"])
