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
from collections.abc import Iterable
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
        self._sent_term_at: float | None = None
        self._stopped = False

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        # Its own session (Ctrl-C reaches `up`, which stops it in order), and a SIGTERM
        # when `up` dies, even by SIGKILL: no orphan keeps the port for the next `up`.
        main = threading.current_thread() is threading.main_thread()
        self._sent_term_at = None
        self._stopped = False
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
        # A refusal's line is the CLI's ``runledger: ...``: said once is enough.
        words = last_line(self.log_path).removeprefix("runledger: ")
        return f"the {self.name} exited with status {self.proc.returncode} while starting: {words}"

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

    def terminate(self) -> None:
        """Send SIGTERM (once: a second one makes a service exit at once) if it runs."""
        if self.proc is not None and self.proc.poll() is None and self._sent_term_at is None:
            self.proc.send_signal(signal.SIGTERM)
            self._sent_term_at = time.monotonic()

    def stop(self, timeout: float = KILL_AFTER_S) -> None:
        """SIGTERM (unless :meth:`terminate` sent it), then SIGKILL ``timeout`` s after
        it; the log line says which it took and the exit status (0: a clean stop, 3: the
        service's own forced exit). Nothing for a process that ended before being asked:
        :meth:`check` or :meth:`exited` has said so."""
        if self.proc is None or self._stopped:
            return
        if self.proc.poll() is not None and self._sent_term_at is None:
            return
        self._stopped = True
        self.terminate()
        sent = self._sent_term_at if self._sent_term_at is not None else time.monotonic()
        try:
            status = self.proc.wait(max(0.0, sent + timeout - time.monotonic()))
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


def stop_together(children: Iterable[Child], timeout: float) -> None:
    """SIGTERM to every child at once, then SIGKILL to those still running ``timeout`` s
    later: for when the order of a clean stop no longer matters. Once the broker is gone
    a service's stop cannot reach it and waits out its whole grace; one after the other,
    that kept `up` stopping for 36 s after it had said the broker died."""
    children = list(children)
    for child in children:
        child.terminate()
    for child in children:
        child.stop(timeout)


def last_line(path: Path) -> str:
    """The last non-empty line of the text file at ``path`` ('' when there is none)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 8192))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return ""
    return next((line.strip() for line in reversed(lines) if line.strip()), "")
