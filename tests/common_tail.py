"""The common tail of the chapter scripts: the lines at the end, the same in every script on
one client, that read where RabbitMQ is, stop on Ctrl+C and turn any error into one line."""

from __future__ import annotations

from tutorial_tools.processes import ROOT

MAX_LINES = 15


# The cluster chapter's scripts take every node's address (RABBITMQ_URLS): a tail of their own.
OWN_TAIL = ("cluster",)


def tails(imports: str, marker: str, folder: str | None = None) -> dict[str, str]:
    """Each chapter script whose text has ``imports`` (its client's import line): its tail,
    from the line with ``marker`` on. Fails for a script with no such line, or two. Only the
    scripts of ``folder``, if given; else those of every chapter but the OWN_TAIL ones."""
    found = {}
    # A chapter's folder, or a track's chapter (amqp10/hello_world/).
    for path in sorted([*ROOT.glob("*/*.py"), *ROOT.glob("amqp10/*/*.py")]):
        if path.parent.name in ("tests", "tutorial_tools") or path.parent.name.startswith("."):
            continue
        if path.parent.name != folder and (folder or path.parent.name in OWN_TAIL):
            continue
        text = path.read_text(encoding="utf-8")
        if imports in text:
            name = path.relative_to(ROOT).as_posix()
            assert text.count(marker) == 1, f"{name} has no common tail, or two"
            # From the start of the marker's line (the `if __name__ == "__main__":` it explains).
            found[name] = text[text.rfind("\n", 0, text.index(marker)) + 1 :]
    return found


def differing(tails: dict[str, str], reference: str) -> list[str]:
    """The scripts whose tail is not the same as ``reference``'s, which must be at most
    MAX_LINES long."""
    assert len(tails[reference].splitlines()) <= MAX_LINES
    return [name for name, tail in tails.items() if tail != tails[reference]]
