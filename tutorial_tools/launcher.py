"""Start chapter scripts quickly: fork each from a Python that has imported pika and rstream.

A chapter script spends most of its short life importing pika or rstream (0.1 to 0.2 s of CPU
each time); the test suite starts hundreds. The launcher is one Python process that imports them
once and then forks a child per script. The child is a process of its own, as `python
script.py` would make it: it gets the script's arguments, working directory, environment and
standard streams, runs the script's file as __main__, and ends as the interpreter would (the
same exit status, the same handling of an uncaught exception, of sys.exit() and of signals).

    launcher = Launcher()                       # one per process that starts scripts
    proc = launcher.start(argv, cwd, env, stdin=..., stdout=..., stderr=...)
    proc.wait(timeout=10)                       # a subprocess.Popen's interface, the part used

The launcher reports each child's exit status to the process that asked for it. Linux only
(it passes file descriptors over a Unix socket of SOCK_SEQPACKET type); elsewhere, and with
TUTORIAL_PLAIN_START=1, ScriptProcess starts `python script.py` as usual.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import runpy
import selectors
import signal
import socket
import subprocess
import sys
import threading
from typing import IO

from tutorial_tools import leftovers

PRELOADED = ("pika", "rstream", "asyncio")  # what the chapter scripts import
MAX_MESSAGE = 1 << 20


def available() -> bool:
    return sys.platform.startswith("linux") and not os.environ.get("TUTORIAL_PLAIN_START")


class LaunchedProcess:
    """The part of subprocess.Popen's interface that ScriptProcess uses."""

    def __init__(self, launcher: Launcher, pid: int, streams: dict[str, IO | None]) -> None:
        self.launcher, self.pid = launcher, pid
        self.stdin, self.stdout, self.stderr = (streams[n] for n in ("stdin", "stdout", "stderr"))
        self.returncode: int | None = None
        self._ended = threading.Event()

    def _exited(self, code: int) -> None:
        self.returncode = code
        self._ended.set()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._ended.wait(timeout):
            raise subprocess.TimeoutExpired(str(self.pid), timeout or 0)
        return self.returncode  # type: ignore[return-value]

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass  # it has just ended; its status is on its way

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class Launcher:
    """The launcher process, and the thread that hears from it which child ended how."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._sock = ours
        self._server = subprocess.Popen(
            [sys.executable, "-m", "tutorial_tools.launcher", str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
            # It ends by itself when this process goes (its end of the socket closes), so it
            # is none of what leftovers.remove() looks for; the scripts it starts are.
            env={k: v for k, v in os.environ.items() if k != leftovers.MARK}
            | {"PYTHONUNBUFFERED": "1"},
        )
        theirs.close()
        self._lock = threading.Lock()
        self._started: dict[int, int] = {}  # request number: pid
        self._replied = threading.Condition(self._lock)
        self._children: dict[int, LaunchedProcess] = {}
        self._early: dict[int, int] = {}  # pid: exit status, for children not yet registered
        self._requests = 0
        threading.Thread(target=self._listen, daemon=True, name="launcher").start()

    def start(
        self, argv: list[str], cwd: str, env: dict[str, str], stdin_pipe: bool = False
    ) -> LaunchedProcess:
        """Start ``argv`` ([python, script, *args]) as `subprocess.Popen` would, with a pipe
        for stdout and for stderr, and stdin a pipe (``stdin_pipe``) or /dev/null."""
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        if stdin_pipe:
            in_r, in_w = os.pipe()
        else:
            in_r, in_w = os.open(os.devnull, os.O_RDONLY), None
        with self._lock:
            self._requests += 1
            number = self._requests
            request = {"n": number, "argv": argv, "cwd": cwd, "env": env}
            socket.send_fds(self._sock, [json.dumps(request).encode()], [in_r, out_w, err_w])
        for fd in (in_r, out_w, err_w):
            os.close(fd)
        with self._replied:
            self._replied.wait_for(lambda: number in self._started)
            pid = self._started.pop(number)
        text = {"encoding": "utf-8", "errors": "backslashreplace"}
        streams = {
            "stdin": open(in_w, "w", **text) if in_w is not None else None,  # noqa: SIM115
            "stdout": open(out_r, **text),  # noqa: SIM115
            "stderr": open(err_r, **text),  # noqa: SIM115
        }
        proc = LaunchedProcess(self, pid, streams)
        with self._lock:
            self._children[pid] = proc
            if pid in self._early:
                proc._exited(self._early.pop(pid))
        return proc

    def _listen(self) -> None:
        while True:
            try:
                message = self._sock.recv(MAX_MESSAGE)
            except OSError:
                return
            if not message:
                return
            event = json.loads(message)
            with self._lock:
                if "started" in event:
                    self._started[event["started"]] = event["pid"]
                    self._replied.notify_all()
                elif (child := self._children.pop(event["pid"], None)) is not None:
                    child._exited(event["code"])
                else:
                    self._early[event["pid"]] = event["code"]

    def close(self) -> None:
        # The launcher ends when it hears nothing more. A shutdown, unlike a close, also ends
        # the listening thread's recv() at once: until then the socket stays open for both.
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        try:
            self._server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._server.kill()


# -- the launcher process ----------------------------------------------------------------


def serve(fd: int) -> None:
    for module in PRELOADED:
        __import__(module)
    gc.freeze()  # the children's collections skip all of this (and copy none of its pages)
    sock = socket.socket(fileno=fd)
    wakeup_r, wakeup_w = os.pipe()
    os.set_blocking(wakeup_w, False)
    signal.set_wakeup_fd(wakeup_w)  # SIGCHLD wakes the loop below
    signal.signal(signal.SIGCHLD, lambda *_: None)
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ)
    selector.register(wakeup_r, selectors.EVENT_READ)
    while True:
        for key, _ in selector.select():
            if key.fileobj is sock:
                try:
                    message, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, 3)
                except OSError:
                    message = b""
                if not message:
                    return  # the other end closed: nothing more to start
                request = json.loads(message)
                pid = os.fork()
                if pid == 0:
                    selector.close()
                    sock.close()
                    run_script(request, fds, (wakeup_r, wakeup_w))
                for descriptor in fds:
                    os.close(descriptor)
                sock.send(json.dumps({"started": request["n"], "pid": pid}).encode())
            else:
                os.read(wakeup_r, 4096)
        while True:  # every child that has ended
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            sock.send(json.dumps({"pid": pid, "code": os.waitstatus_to_exitcode(status)}).encode())


def run_script(request: dict, fds: list[int], wakeup: tuple[int, int]) -> None:
    """In the child: become `python script.py args` and run it; never returns."""
    signal.set_wakeup_fd(-1)
    for descriptor in wakeup:
        os.close(descriptor)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for descriptor, standard in zip(fds, (0, 1, 2), strict=True):
        os.dup2(descriptor, standard)
        os.close(descriptor)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    script, *_ = sys.argv[:] = request["argv"][1:]
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    # Anything the script raises goes up to the interpreter, which reports it and sets the
    # exit status as it would have for `python script.py`.
    runpy.run_path(script, run_name="__main__")
    sys.exit(0)


if __name__ == "__main__":
    serve(int(sys.argv[1]))
