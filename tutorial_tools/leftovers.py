"""What a killed command leaves behind, found and removed: its brokers' processes, data and
containers.

A command that starts a broker stops it however it ends, unless it is killed (SIGKILL), as a
test's teardown kills a command that hangs. Its local broker then runs on in a session of its
own, with its own epmd and a data directory, and its container stays up. A run that marks its
processes with ``TUTORIAL_RUN`` in their environment (everything they start inherits it, and
every container the tooling starts is labelled with it) can remove all of that afterwards with
``remove(mark)``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from pathlib import Path

import psutil

MARK = "TUTORIAL_RUN"  # in the environment of every process of a run, and on its containers
LABEL = "tutorial.run"


def remove(mark: str) -> list[str]:
    """End every process but this one whose environment carries ``mark``, delete the data
    directories of the local brokers among them, and remove the containers labelled with it.
    What was removed, one line each."""
    removed = []
    data = set()
    processes = []
    for process in psutil.process_iter(["pid", "environ", "cmdline"]):
        environ = process.info["environ"] or {}
        if environ.get(MARK) != mark or process.pid == os.getpid():
            continue
        processes.append(process)
        if "RABBITMQ_MNESIA_BASE" in environ:
            data.add(Path(environ["RABBITMQ_MNESIA_BASE"]).parent)
        removed.append(f"process {process.pid}: {' '.join(process.info['cmdline'] or [])[:80]}")
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.send_signal(signal.SIGKILL)
    psutil.wait_procs(processes, timeout=10)
    for directory in sorted(data):
        if directory.name.startswith("tutorial-rabbitmq-") and directory.exists():
            shutil.rmtree(directory, ignore_errors=True)
            removed.append(f"data directory {directory}")
    return removed + _remove_containers(mark)


def _remove_containers(mark: str) -> list[str]:
    from tutorial_tools.sources import engine_answers

    if not engine_answers():
        return []
    import docker

    client = docker.from_env(timeout=10)
    try:
        containers = client.containers.list(all=True, filters={"label": f"{LABEL}={mark}"})
        for container in containers:
            container.remove(force=True, v=True)
        return [f"container {container.name}" for container in containers]
    finally:
        client.close()
