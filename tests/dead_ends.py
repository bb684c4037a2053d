"""Loopback ports where no broker answers, for the tests of what a script or the doctor says
when it finds nothing, or the wrong thing, at the address it was given."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def dead_ends() -> Iterator[dict[str, int]]:
    """Two loopback ports, for as long as the block runs: a connection to "refused" is refused
    (a socket is bound there, not listening), one to "silent" is accepted by the kernel and
    never answered."""
    with socket.socket() as refusing, socket.socket() as silent:
        refusing.bind(("127.0.0.1", 0))
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        yield {"refused": refusing.getsockname()[1], "silent": silent.getsockname()[1]}
