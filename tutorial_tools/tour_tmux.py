"""`tour --tmux`: a chapter as real terminals, one tmux pane each, for a learner to type in."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys

from tutorial_tools.chapters import SENDER, Chapter
from tutorial_tools.processes import ROOT
from tutorial_tools.waiting import wait_until


def open_in_tmux(
    chap: Chapter, url: str, session: str, attach: bool, stream_url: str | None = None
) -> int:
    """One tmux pane per terminal, receivers running, the first step typed in the sender pane."""
    if not shutil.which("tmux"):
        print(
            "tour: --tmux needs tmux, which is not installed (Debian/Ubuntu: apt-get install tmux; "
            "macOS: brew install tmux). Without it, open the terminals yourself: see "
            f"{chap.slug}/README.md",
            file=sys.stderr,
        )
        return 1

    # TUTORIAL_TMUX_SOCKET puts the session on a tmux server of its own (the tests use it).
    socket_name = os.environ.get("TUTORIAL_TMUX_SOCKET")
    base = ["tmux", "-L", socket_name] if socket_name else ["tmux"]

    def tmux(*args: str) -> str:
        return subprocess.run(
            [*base, *args], check=True, capture_output=True, text=True
        ).stdout.strip()

    # `python` in every pane is this environment's, with pika, as in the notes' commands.
    bin_dir = shlex.quote(os.path.dirname(sys.executable))
    env = f'export RABBITMQ_URL={shlex.quote(url)} PATH={bin_dir}:"$PATH"; '
    if stream_url:
        env += f"export RABBITMQ_STREAM_URL={shlex.quote(stream_url)}; "
    env += f"cd {shlex.quote(str(ROOT))}; "

    tmux(
        "new-session",
        "-d",
        "-s",
        session,
        "-x",
        "200",
        "-y",
        "50",
        "-n",
        chap.slug,
        "bash",
        "--norc",
    )
    try:
        tmux("set-option", "-t", session, "remain-on-exit", "on")
        tmux("set-option", "-t", session, "pane-border-status", "top")
        first = f"{session}:{chap.slug}.0"
        tmux("select-pane", "-t", first, "-T", SENDER)
        tmux("send-keys", "-t", first, env.rstrip("; "), "Enter")
        for term in chap.terminals:
            pane = tmux("split-window", "-t", session, "-P", "-F", "#{pane_id}", "bash", "--norc")
            tmux("select-pane", "-t", pane, "-T", term.name)
            tmux("send-keys", "-t", pane, env + term.command, "Enter")
            tmux("select-layout", "-t", session, "tiled")
        if chap.steps:  # the first step typed, not run: the learner presses Enter
            tmux("send-keys", "-t", first, chap.steps[0].command)
        tmux("select-pane", "-t", first)
    except subprocess.CalledProcessError as exc:
        subprocess.run([*base, "kill-session", "-t", session], capture_output=True)
        print(f"tour: tmux failed: {exc.stderr.strip()}", file=sys.stderr)
        return 1
    print(f"tmux session {session!r} is ready: one pane per terminal of {chap.slug}.", flush=True)
    if attach and sys.stdin.isatty():
        subprocess.run([*base, "attach-session", "-t", session])
    else:
        print(f"Attach with: {shlex.join([*base, 'attach', '-t', session])}", flush=True)
        print("The broker stays up until the session ends.", flush=True)
    # The broker lives as long as the session does.
    wait_until(
        lambda: (
            subprocess.run([*base, "has-session", "-t", session], capture_output=True).returncode
        ),
        None,
        f"the end of tmux session {session!r}",
        interval=1,
    )
    return 0
