"""The notes cannot rot: every command they show is one the tour, the tests or CI run."""

from __future__ import annotations

import re
import shlex

import pytest

from tutorial_tools.chapters import CHAPTERS
from tutorial_tools.processes import ROOT

NOTES = [*sorted(ROOT.glob("*/README.md")), ROOT / "README.md"]
CI_SCRIPT = (ROOT / ".ci" / "run").read_text()
COMPOSE_IN_CI = '"${compose[@]}"'

# Commands the notes may show besides the chapter scripts, each with what .ci/run runs for it.
RUN_BY_CI = {
    "make tour": "make tour",
    "make test": "run_tests",  # make test, with pytest's exit code 5 handled
    "make broker": "make broker",
    "make inspect": "make inspect",
    "make doctor": "make doctor",
    "make bench": "make bench",
    "docker compose up -d": f"{COMPOSE_IN_CI} up -d",
    "docker compose down -v": f"{COMPOSE_IN_CI} down -v",
}
for listing in (
    "list_queues name messages_ready messages_unacknowledged",
    "list_exchanges name type",
    "list_bindings source_name destination_name routing_key",
):
    RUN_BY_CI[f"docker compose exec rabbitmq rabbitmqctl {listing}"] = (
        f"{COMPOSE_IN_CI} exec rabbitmq rabbitmqctl {listing}"
    )


def chapter_commands() -> set[tuple[str, ...]]:
    """Script and arguments of every command the tour (and test_tour.py) runs."""
    commands = set()
    for chap in CHAPTERS:
        for part in (*chap.terminals, *chap.steps):
            commands.add(tuple(shlex.split(part.command)[1:]))
    return commands


def shown_commands() -> list[tuple[str, str]]:
    found = []
    for note in NOTES:
        for block in re.findall(r"```console\n(.*?)```", note.read_text(), re.S):
            found += [
                (note.relative_to(ROOT).as_posix(), line[2:].strip())
                for line in block.splitlines()
                if line.startswith("$ ")
            ]
    return found


@pytest.mark.parametrize(("note", "command"), shown_commands())
def test_command_in_the_notes_is_run_by_the_tour_or_ci(note, command):
    words = shlex.split(command)
    if words[0] in ("python", ".venv/bin/python"):
        assert tuple(words[1:]) in chapter_commands(), (
            f"{note} shows `{command}`, which the tour does not run"
        )
    elif command.startswith(("export RABBITMQ_URL=", "export RABBITMQ_MANAGEMENT_URL=")):
        name = command.split("=")[0]  # a line make broker prints
        assert f"{name}=" in (ROOT / "tutorial_tools" / "broker.py").read_text()
    else:
        key = next((k for k in RUN_BY_CI if command == k or command.startswith(k + " ")), None)
        assert key, f"{note} shows `{command}`, which CI does not run"
        assert RUN_BY_CI[key] in CI_SCRIPT, f".ci/run no longer runs `{RUN_BY_CI[key]}`"


def test_every_chapter_has_notes_that_link_from_the_readme():
    readme = (ROOT / "README.md").read_text()
    for chap in CHAPTERS:
        assert (ROOT / chap.slug / "README.md").exists(), chap.slug
        assert f"({chap.slug}/README.md)" in readme, chap.slug


def test_notes_link_only_to_files_that_exist():
    for note in NOTES:
        for target in re.findall(r"\]\(([^)#]+)\)", note.read_text()):
            if not re.match(r"[a-z]+:", target):
                assert (note.parent / target).exists(), (
                    f"{note.relative_to(ROOT)} links to {target}"
                )


def test_readme_commands_are_the_makefile_targets():
    makefile = (ROOT / "Makefile").read_text()
    for target in ("tour", "test", "broker", "inspect", "bench", "lint"):
        assert re.search(rf"^{target}:", makefile, re.M), target


def test_the_readme_says_the_python_the_project_declares():
    pyproject = (ROOT / "pyproject.toml").read_text()
    declared = re.search(r'requires-python = ">=(\d+\.\d+)"', pyproject)[1]
    assert f"Python {declared} or newer" in (ROOT / "README.md").read_text()
