"""Run a chapter script as its own process, as a learner would in a terminal, and read it.

Used by the tests and the guided tour: start a script with ``RABBITMQ_URL`` set (and
``RABBITMQ_STREAM_URL``, for the stream chapters), wait for a line it prints (with a deadline,
never a sleep), press Ctrl+C on it, or kill it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from tutorial_tools.launcher import Launcher, available

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TIMEOUT = 20.0
_launcher: Launcher | None = None


def start_scripts_from_a_launcher() -> None:
    """From now on, start scripts by forking them from a launcher that has imported their
    libraries already (launcher.py), where that works: the test suite does, to spend its CPU
    on the scripts' work rather than on hundreds of imports of pika."""
    global _launcher
    if _launcher is None and available():
        _launcher = Launcher()


def stop_the_launcher() -> None:
    global _launcher
    if _launcher is not None:
        _launcher.close()
        _launcher = None


class ScriptError(AssertionError):
    """A script did not print what was awaited in time, or ended unexpectedly."""


class ScriptProcess:
    """One chapter script running as a child process, its output collected line by line."""

    def __init__(
        self,
        script: str | Path,
        args: Sequence[str] = (),
        url: str | None = None,
        env: dict[str, str] | None = None,
        stream_url: str | None = None,
        on_line: Callable[[ScriptProcess, str], None] | None = None,
        label: str | None = None,
        keyboard: bool = False,
    ) -> None:
        self.path = Path(script) if Path(script).is_absolute() else ROOT / script
        self.args = [str(arg) for arg in args]
        self.label = label or f"{self.path.parent.name}/{self.path.name}"
        child_env = dict(os.environ)
        child_env["PYTHONUNBUFFERED"] = "1"  # print() reaches us as it happens
        child_env.pop("PYTHONWARNINGS", None)
        if url is not None:
            child_env["RABBITMQ_URL"] = url
        if stream_url is not None:
            child_env["RABBITMQ_STREAM_URL"] = stream_url
        child_env.update(env or {})
        self.lines: list[str] = []  # stdout and stderr, interleaved as they arrive
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._changed = threading.Condition()
        self._on_line = on_line
        argv = [sys.executable, str(self.path), *self.args]
        if _launcher is not None:
            self.process = _launcher.start(argv, str(self.path.parent), child_env, keyboard)
        else:
            self.process = subprocess.Popen(
                argv,
                cwd=self.path.parent,
                env=child_env,
                # keyboard=True lets type_line() answer the script's prompts.
                stdin=subprocess.PIPE if keyboard else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                encoding="utf-8",
                errors="backslashreplace",
            )
        self._readers = [
            threading.Thread(
                target=self._read, args=(self.process.stdout, self.stdout), daemon=True
            ),
            threading.Thread(
                target=self._read, args=(self.process.stderr, self.stderr), daemon=True
            ),
        ]
        for reader in self._readers:
            reader.start()

    def __repr__(self) -> str:
        return f"<ScriptProcess {self.label} {' '.join(self.args)} pid={self.process.pid}>"

    def _read(self, stream, into: list[str]) -> None:
        for raw in stream:
            line = raw.rstrip("\n")
            with self._changed:
                into.append(line)
                self.lines.append(line)
                self._changed.notify_all()
            if self._on_line:
                self._on_line(self, line)
        with self._changed:
            self._changed.notify_all()

    # -- reading --------------------------------------------------------------------------

    @property
    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def matching(self, pattern: str) -> list[str]:
        """Every line so far that matches the regular expression ``pattern``."""
        regex = re.compile(pattern)
        with self._changed:
            return [line for line in self.lines if regex.search(line)]

    def wait_for(self, pattern: str, timeout: float = DEFAULT_TIMEOUT, count: int = 1) -> list[str]:
        """Wait until ``count`` lines match ``pattern``; return them. Fails on exit or deadline."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [line for line in self.lines if regex.search(line)]
                if len(found) >= count:
                    return found
                if self._finished():
                    raise ScriptError(
                        f"{self.label} exited ({self.process.returncode}) after {len(found)} of "
                        f"{count} lines matching {pattern!r}; it printed:\n{self._tail()}"
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ScriptError(
                        f"{self.label}: {len(found)} of {count} lines matching {pattern!r} after "
                        f"{timeout:g} s; it printed:\n{self._tail()}"
                    )
                self._changed.wait(min(remaining, 0.2))

    def _finished(self) -> bool:
        return self.process.poll() is not None and not any(r.is_alive() for r in self._readers)

    def _tail(self, n: int = 30) -> str:
        return "\n".join(f"    {line}" for line in self.lines[-n:]) or "    (nothing)"

    def type_line(self, text: str = "") -> None:
        """Type a line at the script's prompt, as if pressing Enter after it."""
        assert self.process.stdin, "start the script with keyboard=True to type at it"
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()

    # -- ending ---------------------------------------------------------------------------

    def wait(self, timeout: float = DEFAULT_TIMEOUT) -> int:
        """Wait for the script to exit by itself; return its exit code."""
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise ScriptError(
                f"{self.label} still running after {timeout:g} s:\n{self._tail()}"
            ) from exc
        for reader in self._readers:
            reader.join(timeout=5)
        return code

    def interrupt(self, timeout: float = DEFAULT_TIMEOUT) -> int:
        """Press Ctrl+C on the script (SIGINT) and wait for it to exit."""
        return self.send(signal.SIGINT, timeout)

    def terminate(self, timeout: float = DEFAULT_TIMEOUT) -> int:
        return self.send(signal.SIGTERM, timeout)

    def kill(self, timeout: float = DEFAULT_TIMEOUT) -> int:
        """SIGKILL: the script gets no chance to clean up, as when a machine dies."""
        return self.send(signal.SIGKILL, timeout)

    def send(self, signum: int, timeout: float = DEFAULT_TIMEOUT) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signum)
        return self.wait(timeout)

    def stop(self) -> None:
        """Make sure the script is gone, however it got here (used in teardown)."""
        if self.process.poll() is None:
            self.process.kill()
        try:
            self.wait(timeout=10)
        except ScriptError:
            pass
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream:
                stream.close()


def run_script(
    script: str | Path,
    args: Sequence[str] = (),
    url: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    **kw,
) -> ScriptProcess:
    """Run a script to its end (a sender, a client) and return it, finished."""
    proc = ScriptProcess(script, args, url=url, **kw)
    try:
        proc.wait(timeout)
    finally:
        proc.stop()
    return proc
