"""The one lifecycle of the commands that need a broker (make broker, the tour, the bench).

``running_broker()``: Ctrl+C and SIGTERM stop, the broker starts, and it is stopped however the
command ends. ``run_with_broker()`` wraps a command's work in it and turns its outcome into an
exit status.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Callable, Iterator
from typing import NoReturn

from tutorial_tools.sources import Broker, BrokerError, BrokerUnavailable, make_broker


def _say(text: str) -> None:
    print(text, flush=True)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def interrupt(signum: int, frame: object) -> None:
    """Raise KeyboardInterrupt, and ignore Ctrl+C and SIGTERM from now on, so that a second
    one cannot cut the broker's stop short: `make` passes on to its child the SIGTERM that
    the child got already, and an impatient user presses Ctrl+C twice."""
    for stop_signal in STOP_SIGNALS:
        signal.signal(stop_signal, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # ignored now: none may wait
    raise KeyboardInterrupt


def wait_for_stop() -> NoReturn:
    """Wait for Ctrl+C or SIGTERM, then stop as interrupt() does.

    Not signal.pause(): a signal that lands after Python last looked for one and before the
    pause begins is only handled once pause() returns, at the next signal, and the command
    would sit there deaf to the first. Blocked, a stop signal waits for sigwait() instead,
    however early it comes.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    interrupt(signal.sigwait(STOP_SIGNALS), None)


@contextlib.contextmanager
def running_broker(
    source: str | None = None, fixed_port: int | None = None, say: Callable[[str], None] = _say
) -> Iterator[Broker]:
    """A started broker for the ``with`` block, stopped when it ends, however it ends.

    Ctrl+C and SIGTERM raise KeyboardInterrupt (also where a shell started us ignoring SIGINT),
    once: see interrupt().
    """
    for signum in STOP_SIGNALS:
        signal.signal(signum, interrupt)
    broker = make_broker(source, fixed_port)
    try:
        if broker.source != "url":
            say(f"Starting a throwaway {broker.source} broker ...")
        broker.start()
        say(f"Using the {broker.describe()}")
        yield broker
    except KeyboardInterrupt:
        say("\nInterrupted." + (" Stopping the broker ..." if broker.source != "url" else ""))
        raise
    finally:
        broker.stop()


def run_with_broker(
    prog: str,
    work: Callable[[Broker], int],
    source: str | None = None,
    fixed_port: int | None = None,
    say: Callable[[str], None] = _say,
    interrupted: int = 130,
) -> int:
    """``work(broker)`` in running_broker(); its exit status, ``interrupted`` on Ctrl+C, or 1
    with one line on stderr when no broker could be had."""
    try:
        with running_broker(source, fixed_port, say) as broker:
            return work(broker)
    except KeyboardInterrupt:
        return interrupted
    except (BrokerUnavailable, BrokerError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
