"""Where everything lives under the data directory (architecture.md, "Files")."""

import shutil
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DataPaths:
    """All paths under one data directory, so no module builds its own."""

    root: Path

    @property
    def registry(self) -> Path:
        return self.root / "larkfleet.db"

    @property
    def admin_token(self) -> Path:
        return self.root / "admin.token"

    @property
    def secret_key(self) -> Path:
        return self.root / "secret.key"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def control_socket(self) -> Path:
        return self.run_dir / "ctl.sock"

    @property
    def control_endpoint(self) -> str:
        return f"ipc://{self.control_socket}"

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "larkfleet.pid"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def supervisor_log(self) -> Path:
        return self.logs_dir / "supervisor.log"

    def bot_log(self, bot_id: str) -> Path:
        return self.logs_dir / f"{bot_id}.log"

    def bot_dir(self, bot_id: str) -> Path:
        return self.root / "bots" / bot_id

    def spool(self, bot_id: str) -> Path:
        return self.bot_dir(bot_id) / "spool.db"

    def remove_bot_files(self, bot_id: str) -> None:
        """Delete the bot's spool folder and its log with every rotated copy.

        Called once the bot's worker is gone, when the bot is deleted: nothing
        of a deleted bot stays on disk (its events and replies included).
        """
        shutil.rmtree(self.bot_dir(bot_id), ignore_errors=True)
        log = self.bot_log(bot_id)
        for path in (log, *log.parent.glob(f"{log.name}.*")):
            path.unlink(missing_ok=True)

    def ensure(self) -> None:
        """Create the directories; run/ is 0700 because it holds the control socket."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(exist_ok=True)
        (self.root / "bots").mkdir(exist_ok=True)
        self.run_dir.mkdir(mode=0o700, exist_ok=True)
        self.run_dir.chmod(0o700)
