"""A service that ``runledger up`` runs as a child process: started with its log
file, restarted when it dies, stopped in order (SIGTERM, then SIGKILL once the
service's own grace has passed), each step said in one log line of ``runledger.up``.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from runledger.broker.host import die_with_parent
from runledger.services import STOP_GRACE_S

log = logging.getLogger("runledger.up")

RESTART_DELAY_S = 2.0
# How long `up` waits for a service to stop after SIGTERM before it kills it: longer
# than the service's own grace (runledger.services.STOP_GRACE_S), after which the
# service exits by itself with status 3 and a line in its log saying why.
KILL_AFTER_S = STOP_GRACE_S + 5.0


class Child:
    """A supervised child process: restarted when it dies, stopped on shutdown."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        # Its own session (Ctrl-C reaches `up`, which stops it in order), and a SIGTERM
        # when `up` dies, even by SIGKILL: no orphan keeps the port for the next `up`.
        main = threading.current_thread() is threading.main_thread()
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent if main else None,  # only prctl: safe after fork
        )
        out.close()
        log.info("started %s (pid %d), log in %s", self.name, self.proc.pid, self.log_path)

    def exited(self) -> str | None:
        """What happened, when the process has ended: its status and its log's last
        line (a service's last words are its error)."""
        if self.proc is None or self.proc.poll() is None:
            return None
        return (
            f"the {self.name} exited with status {self.proc.returncode} while starting: "
            f"{last_line(self.log_path)}"
        )

    def check(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            self.restarts += 1
            log.warning(
                "%s exited with %s; restarting (see %s)",
                self.name,
                self.proc.returncode,
                self.log_path,
            )
            time.sleep(RESTART_DELAY_S)
            self.start()

    def stop(self, timeout: float = KILL_AFTER_S) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` s; the log line says which it took
        and the exit status (0: a clean stop, 3: the service's own forced exit)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            status = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            log.warning(
                "%s (pid %d) did not stop within %g s of SIGTERM; killed (see %s)",
                self.name,
                self.proc.pid,
                timeout,
                self.log_path,
            )
            return
        if status == 0:
            log.info("stopped %s (pid %d) cleanly", self.name, self.proc.pid)
        else:
            ended = f"signal {signal.Signals(-status).name}" if status < 0 else f"status {status}"
            log.warning(
                "%s (pid %d) stopped by %s (see %s)", self.name, self.proc.pid, ended, self.log_path
            )


def last_line(path: Path) -> str:
    """The last non-empty line of the text file at ``path`` ('' when there is none)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 8192))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return ""
    return next((line.strip() for line in reversed(lines) if line.strip()), "")
