"""The traps a new operator met, each kept as a check against the real `larkfleet` command.

Start-up failures are one line with their own exit code (shared/exitcodes.py);
the CLI finds the service the way `make run PORT=...` started it; worker
processes carry the bot's id and name; handler code is found through the
handler path; a deleted bot leaves no files behind; a second signal always
means "forced".
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from shared import exitcodes
from supervisor.serve import Signals
from tests.fixtures.service import ZYGOTE_SPEEDUPS, Service, free_port, wait_until
from tests.fixtures.sim import SimApp

ROOT = Path(__file__).resolve().parents[1]
LARKFLEET = str(Path(sys.executable).with_name("larkfleet"))
CLEAN_ENV = {**{k: v for k, v in os.environ.items() if not k.startswith("LARKFLEET_")},
             **ZYGOTE_SPEEDUPS}
"""An operator's shell: none of the suite's settings but its zygote speed-ups."""


def serve(data_dir: Path | str, *flags: str, **popen: object) -> subprocess.CompletedProcess[str]:
    command = [LARKFLEET, "serve", "--data-dir", str(data_dir), *flags]
    popen.setdefault("env", CLEAN_ENV)
    return subprocess.run(command, capture_output=True, text=True, timeout=60,
                          **popen)  # type: ignore[call-overload]


def assert_one_line(result: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0]


def test_port_in_use_is_one_line_with_its_own_code(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = serve(tmp_path / "data", "--port", str(port))
    assert_one_line(result, exitcodes.SERVE_PORT_IN_USE, f"port {port}", "--port")


@pytest.mark.parametrize(("flags", "env", "named"), [
    (("--port", "99999"), {}, "--port"),
    (("--port", "-1"), {}, "--port"),
    ((), {"LARKFLEET_PORT": "70000"}, "LARKFLEET_PORT"),
    (("--log-level", "LOUD"), {}, "--log-level"),
    ((), {"LARKFLEET_SDK_PRELOAD": "some"}, "LARKFLEET_SDK_PRELOAD"),
])
def test_bad_setting_is_one_line_before_anything_is_touched(
        tmp_path: Path, flags: tuple[str, ...], env: dict[str, str], named: str) -> None:
    """99999 once listened on 34463 (mod 65536); LOUD was a traceback after mkdir."""
    target = tmp_path / "data"
    result = serve(target, *flags, env={**CLEAN_ENV, **env})
    assert_one_line(result, exitcodes.SERVE_CONFIG, named, "expected")
    assert not target.exists(), "nothing is created before the checks pass"


@pytest.mark.parametrize(("flags", "env", "named"), [
    ((), {"LARKFLEET_URL": "notaurl"}, "LARKFLEET_URL"),
    ((), {"LARKFLEET_PORT": "abc"}, "LARKFLEET_PORT"),
    (("--url", "http://127.0.0.1:99999"), {}, "--url"),
    (("--url", "http://[::1"), {}, "--url"),
])
def test_client_with_a_bad_url_is_one_line_naming_it(
        flags: tuple[str, ...], env: dict[str, str], named: str) -> None:
    """`LARKFLEET_URL=notaurl larkfleet status` was a traceback (unknown url type)."""
    result = subprocess.run([LARKFLEET, "status", *flags], capture_output=True, text=True,
                            env={**CLEAN_ENV, "LARKFLEET_TOKEN": "t", **env}, timeout=60)
    assert_one_line(result, 2, named, "expected")


@pytest.mark.parametrize("handler", ["nope", "[1]"])
def test_bots_add_with_a_bad_handler_flag_is_one_line(handler: str) -> None:
    """`bots add --handler nope` was a JSONDecodeError traceback (bots edit said one line)."""
    argv = ["bots", "add", "--name", "n", "--app-id", "cli_x", "--handler", handler]
    result = subprocess.run([LARKFLEET, *argv], capture_output=True, text=True,
                            env={**CLEAN_ENV, "LARKFLEET_TOKEN": "t"}, timeout=60)
    assert_one_line(result, 2, "--handler")


@pytest.mark.parametrize(("database", "code", "named"), [
    ("notaurl", exitcodes.SERVE_CONFIG, "--database"),
    ("postgresql://u:pw@127.0.0.1:1/db", exitcodes.SERVE_SECRET_KEY, "secret.key"),
])
def test_rotate_key_failures_are_one_line(
        tmp_path: Path, database: str, code: int, named: str) -> None:
    """A bad --database URL was not checked, a node without its key file a traceback."""
    result = subprocess.run([LARKFLEET, "rotate-key", "--data-dir", str(tmp_path / "data"),
                             "--database", database], capture_output=True, text=True,
                            env=CLEAN_ENV, timeout=60)
    assert_one_line(result, code, named)
    assert "pw" not in result.stderr


def test_unknown_host_is_one_line_before_anything_is_touched(tmp_path: Path) -> None:
    result = serve(tmp_path / "data", "--host", "no such host!", "--port", str(free_port()))
    assert_one_line(result, exitcodes.SERVE_CANNOT_LISTEN, "unknown host", "--host")
    assert not (tmp_path / "data").exists(), "nothing is created before the checks pass"


def test_data_dir_that_is_a_file(tmp_path: Path) -> None:
    target = tmp_path / "data"
    target.write_text("not a directory")
    result = serve(target, "--port", str(free_port()))
    assert_one_line(result, exitcodes.SERVE_DATA_DIR_NOT_A_DIRECTORY, str(target), "--data-dir")


def test_data_dir_path_over_the_socket_limit(tmp_path: Path) -> None:
    target = tmp_path / ("d" * 110)
    result = serve(target, "--port", str(free_port()))
    assert_one_line(result, exitcodes.SERVE_SOCKET_PATH_TOO_LONG, "107", "--data-dir")
    assert not target.exists(), "nothing is created before the checks pass"


def test_read_only_data_dir() -> None:
    """Root ignores permission bits through CAP_DAC_OVERRIDE, so as root the service runs
    without it (and without CAP_DAC_READ_SEARCH): still root, so it can load an interpreter
    installed where `nobody` cannot (a pyenv under /root, whose libpython another user's
    loader does not find), but bound by the folder's mode like any other user.

    The folder is made under /tmp itself: pytest's own base folder is 0700 and
    other pytest sessions on the host reset it at any time.
    """
    scratch = Path(tempfile.mkdtemp(prefix="larkfleet-ro-", dir="/tmp"))
    try:
        scratch.chmod(0o755)
        target = scratch / "ro"
        target.mkdir()
        target.chmod(0o555)
        no_override = "-dac_override,-dac_read_search"
        prefix = (["setpriv", f"--bounding-set={no_override}", f"--inh-caps={no_override}"]
                  if os.geteuid() == 0 else [])
        command = [*prefix, LARKFLEET, "serve", "--data-dir", str(target / "data"),
                   "--port", str(free_port())]
        result = subprocess.run(command, env=CLEAN_ENV, capture_output=True, text=True,
                                timeout=60)
        assert_one_line(result, exitcodes.SERVE_DATA_DIR_NOT_WRITABLE, "not writable",
                        "--data-dir")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def test_exit_codes_are_distinct() -> None:
    codes = {name: value for name, value in vars(exitcodes).items() if name.startswith("SERVE_")}
    assert len(set(codes.values())) == len(codes), codes


def test_readme_lists_every_exit_code() -> None:
    """The start-up table holds exactly the SERVE_* codes; the worker's codes are named in
    the architecture notes (code 18, a weak admin token, was once missing)."""
    readme = (ROOT / "README.md").read_text()
    table = readme.split("### When it cannot start", 1)[1].split("\n## ", 1)[0]
    listed = {int(code) for code in re.findall(r"^\| (\d+) \|", table, re.MULTILINE)}
    codes = {name: value for name, value in vars(exitcodes).items()
             if name.isupper() and isinstance(value, int)}
    assert listed == {v for n, v in codes.items() if n.startswith("SERVE_")}
    notes = readme.split("**One worker process is one connection session.**", 1)[1][:800]
    for name, value in codes.items():
        if not name.startswith("SERVE_"):
            assert f"code {value}" in notes, name


def test_version_and_client_help_name_the_settings() -> None:
    version = subprocess.run([LARKFLEET, "--version"], capture_output=True, text=True, timeout=30)
    assert version.returncode == 0 and version.stdout.startswith("larkfleet 0.")
    helped = subprocess.run([LARKFLEET, "status", "--help"], env=CLEAN_ENV,
                            capture_output=True, text=True, timeout=30).stdout
    for name in ("--url", "--data-dir", "LARKFLEET_URL", "LARKFLEET_PORT", "LARKFLEET_TOKEN",
                 "LARKFLEET_DATA_DIR"):
        assert name in helped, name
    for command, default in (("sim", "18080"), ("demo", "13000")):
        text = subprocess.run([LARKFLEET, command, "--help"], capture_output=True, text=True,
                              timeout=30).stdout
        assert f"(default: {default})" in " ".join(text.split()), command


def test_make_run_passes_port_and_host() -> None:
    dry = subprocess.run(["make", "-n", "-s", "-C", str(ROOT), "run", "PORT=13999",
                          "HOST=0.0.0.0"], capture_output=True, text=True, timeout=30)
    assert "--port 13999 --host 0.0.0.0" in dry.stdout


def test_second_signal_after_the_loop_is_counted_not_raised() -> None:
    """A second Ctrl-C while the process finishes exits SERVE_FORCED, never 130."""
    import asyncio

    loop = asyncio.new_event_loop()
    try:
        signals = Signals()
        signals.install(loop)
        signals.on_signal()
        signals.hand_over(loop)
        os.kill(os.getpid(), signal.SIGINT)  # would raise KeyboardInterrupt after the loop
        wait_until(lambda: signals.count == 2, 5, "the late signal to be counted")
        assert signals.exit_code == exitcodes.SERVE_FORCED
    finally:
        loop.close()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def test_second_signal_while_stopping_kills_at_once_and_exits_forced(
    service: Service, sim_app: Callable[..., SimApp]
) -> None:
    """A stopped (SIGSTOP) worker would hold the graceful stop for the whole grace period."""
    app = sim_app()
    bot_id = service.create_bot(app.app_id, app.app_secret, app.url)
    service.connect(bot_id)
    pid = service.wait_state(bot_id, "connected")["pid"]
    os.kill(pid, signal.SIGSTOP)
    log = service.data_dir / "logs" / "supervisor.log"
    service.signal(signal.SIGINT)
    wait_until(lambda: "stopping:" in log.read_text(), 10, "the graceful stop to begin")
    service.signal(signal.SIGINT)
    assert service.process is not None
    assert service.process.wait(1) == exitcodes.SERVE_FORCED  # at once: measured 0.15 s


def test_admin_token_is_complete_once_the_api_answers(tmp_path: Path) -> None:
    """The quick tour reads data/admin.token as soon as the API answers: never a partial file."""
    port = free_port()
    data_dir = tmp_path / "data"
    process = subprocess.Popen(
        [LARKFLEET, "serve", "--data-dir", str(data_dir), "--port", str(port)],
        env=CLEAN_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        def answered() -> bool:
            try:
                requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            except requests.ConnectionError:
                return False
            return True

        wait_until(answered, 60, "the API to answer")
        token = (data_dir / "admin.token").read_text().strip()
        listing = requests.get(f"http://127.0.0.1:{port}/api/feishu/bots", timeout=5,
                               headers={"Authorization": f"Bearer {token}"})
        assert listing.status_code == 200
        cli = subprocess.run([LARKFLEET, "status", "--json", "--data-dir", str(data_dir)],
                             env={**CLEAN_ENV, "LARKFLEET_PORT": str(port)},
                             capture_output=True, text=True, timeout=30)
        assert cli.returncode == 0, cli.stderr
        assert json.loads(cli.stdout) == {"connections": []}
        # Stop once started: a stop during the zygote's warm-up waits for it (load-bound).
        wait_until(lambda: requests.get(f"http://127.0.0.1:{port}/readyz", timeout=1).ok,
                   120, "the service to be ready")
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == exitcodes.SERVE_OK


HANDLER = '''
def answer(message):
    return f"handled: {message.text}"
'''


@pytest.fixture
def handler_service(field_fleet: Service) -> Service:
    """The session's field-case service (tests/fixtures/field.py): its handler folder is
    found through LARKFLEET_HANDLER_PATH alone, never PYTHONPATH; the package is written
    there before the bot needs it."""
    handlers = Path(field_fleet.env["LARKFLEET_HANDLER_PATH"])
    assert str(handlers) not in field_fleet.env.get("PYTHONPATH", "")
    (handlers / "opsbot").mkdir(exist_ok=True)
    (handlers / "opsbot" / "__init__.py").write_text("")
    (handlers / "opsbot" / "replies.py").write_text(HANDLER)
    return field_fleet


def test_worker_named_handler_found_and_files_removed_on_delete(
    handler_service: Service, sim_app: Callable[..., SimApp]
) -> None:
    service = handler_service
    app = sim_app()
    bot_id = service.create_bot(app.app_id, app.app_secret, app.url, name="ops  desk",
                                handler={"kind": "python", "target": "opsbot.replies:answer"})
    service.connect(bot_id)
    pid = service.wait_state(bot_id, "connected")["pid"]
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").strip()
    assert cmdline.decode() == f"larkfleet worker {bot_id} ops desk"

    app.push("hello")
    sent = wait_until(app.sent, 15, "the python handler's reply")
    assert json.loads(sent[0]["content"])["text"] == "handled: hello"

    spool, log = service.data_dir / "bots" / bot_id, service.data_dir / "logs" / f"{bot_id}.log"
    assert spool.is_dir() and log.is_file()
    (log.parent / f"{log.name}.1").write_text("a rotated copy\n")
    assert service.request("DELETE", f"/api/feishu/bots/{bot_id}").status_code == 200
    assert not spool.exists()
    assert not list(log.parent.glob(f"{bot_id}.log*"))


def test_second_supervisor_on_the_same_data_dir(shared_service: Service) -> None:
    result = serve(shared_service.data_dir, "--port", str(free_port()))
    assert_one_line(result, exitcodes.SERVE_ALREADY_RUNNING, "another supervisor", "--data-dir")


def test_ctrl_c_right_after_start_does_not_wait_for_the_zygote(tmp_path: Path) -> None:
    """The zygote's warm-up takes seconds (30 s was seen on a loaded host); a stop asked
    for meanwhile is done at once: no worker can exist before it ends."""
    port = free_port()
    process = subprocess.Popen(
        [LARKFLEET, "serve", "--data-dir", str(tmp_path / "data"), "--port", str(port)],
        env=CLEAN_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        def answered() -> bool:
            try:
                requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            except requests.ConnectionError:
                return False
            return True

        wait_until(answered, 60, "the API to answer")
        process.send_signal(signal.SIGINT)
        assert process.wait(1) == exitcodes.SERVE_OK  # the warm-up alone takes 2-4 s idle
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
