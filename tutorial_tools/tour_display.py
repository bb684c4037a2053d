"""What the tour shows of each terminal: side by side in columns on a terminal, else one line
each, prefixed with the terminal's name (for a log, a pipe or a test)."""

from __future__ import annotations

import os
import shutil
import sys
import threading


class Display:
    """Prints each process's lines as it prints them: in columns on a terminal, else prefixed."""

    def __init__(self, stream=None, columns: bool | None = None, color: bool | None = None) -> None:
        self.stream = stream or sys.stdout
        is_tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.columns = is_tty if columns is None else columns
        no_color = "NO_COLOR" in os.environ or os.environ.get("TERM") == "dumb"
        self.color = (is_tty and not no_color) if color is None else color
        self.names: list[str] = []
        self.width = 40
        self._lock = threading.Lock()

    def _style(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.color else text

    def say(self, text: str = "", style: str = "") -> None:
        with self._lock:
            print(self._style(text, style) if style else text, file=self.stream, flush=True)

    def open_terminals(self, names: list[str]) -> None:
        """Lay out one column per terminal, the sending terminal first."""
        self.names = names
        if not self.columns:
            return
        total = shutil.get_terminal_size((120, 24)).columns
        self.width = max(24, total // len(names))
        header = "".join(_fit(f"[{name}]", self.width) for name in names)
        self.say(header, "1;36")

    def line(self, name: str, text: str) -> None:
        if self.columns and name in self.names:
            column = self.names.index(name)
            # A long line wraps inside its own column.
            pieces = [
                text[i : i + self.width - 1] for i in range(0, len(text), self.width - 1)
            ] or [""]
            with self._lock:
                for piece in pieces:
                    print(" " * (self.width * column) + piece, file=self.stream, flush=True)
        else:
            self.say(f"[{name}] {text}")


def _fit(text: str, width: int) -> str:
    return text[: width - 1].ljust(width)
