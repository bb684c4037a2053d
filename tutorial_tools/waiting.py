"""Wait for a state, with a deadline: the one polling helper of the tooling and the tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class TimedOut(AssertionError):
    """What was awaited did not come in time (an AssertionError, so a test reads it as failed)."""


def wait_until(
    check: Callable[[], T], timeout: float | None, what: str, interval: float = 0.1
) -> T:
    """Call ``check`` until it returns something truthy and return that; ``interval`` is the
    pace of polling, not a guess at how long things take. After ``timeout`` seconds (None:
    no deadline), raise TimedOut naming ``what`` was awaited."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while not (result := check()):
        if deadline is not None and time.monotonic() > deadline:
            raise TimedOut(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)
    return result
