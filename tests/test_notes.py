"""The notes cannot rot: what they show is what the tour, the tests or CI run and see.

- every command in a ```console block is one the tour, CI or tests/test_notes_runs*.py runs;
- every ` [x] `, ` [.] `, ` [*] ` or ` [!] ` line in a ```console or ```text block, and every
  line of a ```console block that shows only chapter scripts at work (the stream scripts print
  lines of their own, as the official ones do), is one the tour waits for in that chapter
  (tutorial_tools/chapters.py) or one a row of tests/test_notes_runs*.py finds in what the
  scripts printed;
- every ```python block is a quote, marked `<!-- quote: chapter/script.py -->`, of lines that
  follow each other in that script (indentation removed alike), or is marked
  `<!-- not a quote: why -->`; and each chapter quotes each of its scripts. (ruff formats the
  python blocks of Markdown files too: a quote that it would reflow once dedented goes between
  `<!-- fmt:off -->` and `<!-- fmt:on -->`.)
"""

from __future__ import annotations

import collections
import inspect
import re
import shlex
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import pika
import pytest
import test_cluster  # noqa: F401 (likewise)
import test_dead_letters  # noqa: F401 (likewise)
import test_notes_runs  # noqa: F401 (its rows register in SHOWN)
import test_notes_runs_amqp10  # noqa: F401 (likewise)
import test_notes_runs_streams  # noqa: F401 (likewise)
import test_resilient_worker  # noqa: F401 (likewise)
from pika.adapters.blocking_connection import BlockingChannel
from shown import SHOWN

from tutorial_tools.chapters import CHAPTERS
from tutorial_tools.processes import ROOT

# The project's pages: a folder's README.md, not a tool's (pytest writes .pytest_cache/README.md).
PAGES = [p for p in sorted(ROOT.glob("*/README.md")) if not p.parent.name.startswith(".")]
ENGLISH = [*PAGES, ROOT / "README.md"]
# A page in Simplified Chinese beside an English one is checked as that one is, and below.
CHINESE = {note: zh for note in ENGLISH if (zh := note.with_name("README.zh-CN.md")).exists()}
NOTES = [*ENGLISH, *CHINESE.values()]
CI_SCRIPT = (ROOT / ".ci" / "run").read_text()
COMPOSE_IN_CI = '"${compose[@]}"'
MARKED = re.compile(r"^ \[[x.*!]\] ")  # a line a chapter script prints about its work

# Commands the notes may show besides the chapter scripts, each with what .ci/run runs for it.
RUN_BY_CI = {
    "make tour": "make tour",
    "make test": "run_tests",  # make test, with pytest's exit code 5 handled
    "make test-cluster": "run_tests test-cluster",
    "TUTORIAL_CLUSTER=compose make test-cluster": "TUTORIAL_CLUSTER=compose run_tests test-cluster",
    # make cluster's nodes, and cluster/docker-compose.yml's containers: make test-cluster
    # starts the one and brings up the other (tutorial_tools/compose_cluster.py), kills,
    # stops and starts their nodes, and removes them.
    "make cluster": "run_tests test-cluster",
    "make broker": "make broker",
    "make inspect": "make inspect",
    "make doctor": "make doctor",
    "make bench": "make bench",
    "docker compose up -d": f"{COMPOSE_IN_CI} up -d",
    "docker compose down -v": f"{COMPOSE_IN_CI} down -v",
}
for action in ("up -d", "kill", "start", "down -v"):
    RUN_BY_CI[f"docker compose -f cluster/docker-compose.yml {action}"] = (
        "TUTORIAL_CLUSTER=compose run_tests test-cluster"
    )
for listing in (
    "list_queues name messages_ready messages_unacknowledged",
    "list_exchanges name type",
    "list_bindings source_name destination_name routing_key",
):
    RUN_BY_CI[f"docker compose exec rabbitmq rabbitmqctl {listing}"] = (
        f"{COMPOSE_IN_CI} exec rabbitmq rabbitmqctl {listing}"
    )


@dataclass(frozen=True)
class Block:
    """A fenced block of a notes page, its lines without the fence's own indentation."""

    note: Path
    kind: str  # console, text, python, mermaid, ...
    marker: str  # the line just before the fence (blank lines skipped)
    lines: tuple[str, ...]
    line_number: int

    @property
    def where(self) -> str:
        return f"{self.note.relative_to(ROOT).as_posix()}:{self.line_number}"

    @property
    def chapter(self) -> str | None:
        """The chapter whose notes these are; None for the top-level README."""
        return self.note.parent.name if self.note.parent != ROOT else None


def blocks(note: Path) -> list[Block]:
    found = []
    lines = note.read_text().splitlines()
    i = 0
    while i < len(lines):
        opening = re.fullmatch(r"(\s*)```(\w*)\s*", lines[i])
        if not opening:
            i += 1
            continue
        indent, kind = opening.groups()
        end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
        body = tuple(line.removeprefix(indent) for line in lines[i + 1 : end])
        marker = next((line.strip() for line in reversed(lines[:i]) if line.strip()), "")
        found.append(Block(note, kind, marker, body, i + 1))
        i = end + 1
    return found


ALL_BLOCKS = [block for note in NOTES for block in blocks(note)]


def chapter_commands() -> set[tuple[str, ...]]:
    """Script and arguments of every command the tour (and test_tour.py) runs."""
    commands = set()
    for chap in CHAPTERS:
        for part in (*chap.terminals, *chap.steps):
            commands.add(tuple(shlex.split(part.command)[1:]))
    return commands


def shown_commands() -> list[tuple[Block, str]]:
    return [
        (block, line[2:].strip())
        for block in ALL_BLOCKS
        if block.kind == "console"
        for line in block.lines
        if line.startswith("$ ")
    ]


def run_by_a_test(block: Block) -> set[str]:
    """The commands of the rows of tests/test_notes_runs*.py for this page's chapter."""
    return {
        command for row in SHOWN if block.chapter in (None, row.chapter) for command in row.commands
    }


@pytest.mark.parametrize(
    ("block", "command"), shown_commands(), ids=[f"{b.where} {c}" for b, c in shown_commands()]
)
def test_command_in_the_notes_is_run_by_the_tour_a_test_or_ci(block, command):
    words = shlex.split(command)
    if command in run_by_a_test(block):
        return
    if words[0] in ("python", ".venv/bin/python"):
        assert tuple(words[1:]) in chapter_commands(), (
            f"{block.where} shows `{command}`, which neither the tour nor a test runs"
        )
    elif command.startswith(
        ("export RABBITMQ_URL=", "export RABBITMQ_MANAGEMENT_URL=", "export RABBITMQ_STREAM_URL=")
    ):
        name = command.split("=")[0]  # a line make broker prints
        assert f"{name}=" in (ROOT / "tutorial_tools" / "broker.py").read_text()
    elif command.startswith(("export RABBITMQ_URLS=", "export RABBITMQ_STREAM_URLS=")):
        name = command.split("=")[0]  # a line make cluster prints
        assert f"{name}=" in (ROOT / "tutorial_tools" / "cluster.py").read_text()
    else:
        key = next((k for k in RUN_BY_CI if command == k or command.startswith(k + " ")), None)
        assert key, f"{block.where} shows `{command}`, which neither CI nor a test runs"
        assert RUN_BY_CI[key] in CI_SCRIPT, f".ci/run no longer runs `{RUN_BY_CI[key]}`"


def seen(block: Block) -> tuple[set[str], list[str | re.Pattern]]:
    """The lines the tour waits for in this page's chapter (every chapter's, for the top
    README): exact lines, and the patterns of the lines its terminals print when ready or
    done; and the lines the rows of tests/test_notes_runs*.py for the chapter find."""
    # A chapter outside the tour (cluster/, which needs make cluster) has its rows only.
    chapters = [c for c in CHAPTERS if c.slug == block.chapter] if block.chapter else CHAPTERS
    expects = [e for chap in chapters for step in chap.steps for e in step.expect]
    exact = {e.line for e in expects if not e.regex}
    patterns: list[str | re.Pattern] = [re.compile(e.line) for e in expects if e.regex]
    patterns += [
        re.compile(pattern)
        for chap in chapters
        for term in chap.terminals
        for pattern in (term.ready, term.finished)
        if pattern
    ]
    for row in SHOWN:
        if block.chapter in (None, row.chapter):
            for line in row.lines:
                (patterns.append if isinstance(line, re.Pattern) else exact.add)(line)
    return exact, patterns


def only_scripts(block: Block) -> bool:
    """A console block whose commands (if any) are all chapter scripts: all else is output."""
    commands = [shlex.split(line[2:]) for line in block.lines if line.startswith("$ ")]
    return block.kind == "console" and all(words[0] == "python" for words in commands)


def shown_output() -> list[tuple[Block, str]]:
    return [
        (block, line)
        for block in ALL_BLOCKS
        if block.kind in ("console", "text")
        for line in block.lines
        if MARKED.match(line) or (only_scripts(block) and line.strip() and line[:2] != "$ ")
    ]


@pytest.mark.parametrize(
    ("block", "line"), shown_output(), ids=[f"{b.where} {line}" for b, line in shown_output()]
)
def test_output_in_the_notes_is_a_line_the_tour_or_a_test_sees(block, line):
    exact, patterns = seen(block)
    assert line in exact or any(pattern.fullmatch(line) for pattern in patterns), (
        f"{block.where} shows {line!r}, which neither the tour nor tests/test_notes_runs*.py "
        "sees a script print"
    )


QUOTE = re.compile(r"<!-- quote: (\S+) -->")
NOT_A_QUOTE = re.compile(r"<!-- not a quote: .+ -->")


def found_in(quoted: tuple[str, ...], script: list[str]) -> bool:
    """Whether ``quoted`` is lines that follow each other in ``script``, all indented alike."""
    for start in range(len(script) - len(quoted) + 1):
        first = script[start]
        if not quoted[0] or not first.endswith(quoted[0]):
            continue
        indent = first[: len(first) - len(quoted[0])]
        if indent.strip():
            continue
        window = script[start : start + len(quoted)]
        if all(
            line == (indent + text if text else "")
            for line, text in zip(window, quoted, strict=True)
        ):
            return True
    return False


def python_blocks() -> list[Block]:
    return [block for block in ALL_BLOCKS if block.kind == "python"]


@pytest.mark.parametrize("block", python_blocks(), ids=[b.where for b in python_blocks()])
def test_python_in_the_notes_is_the_scripts_own_text(block):
    quote = QUOTE.fullmatch(block.marker)
    if NOT_A_QUOTE.fullmatch(block.marker):
        return
    assert quote, (
        f"{block.where}: mark the block <!-- quote: chapter/script.py --> (or not a quote)"
    )
    script = ROOT / quote[1]
    assert script.is_file(), f"{block.where} quotes {quote[1]}, which does not exist"
    assert found_in(block.lines, script.read_text().splitlines()), (
        f"{block.where}: the quoted lines are not lines of {quote[1]} as they stand there"
    )


class SignatureOnly:
    """Stands for a pika 1.x channel: a call checks only that its arguments fit the method."""

    def __getattr__(self, name: str):
        signature = inspect.signature(getattr(BlockingChannel, name))
        return lambda *args, **kwargs: signature.bind(self, *args, **kwargs)


def pika_versions() -> list[tuple[Block, str]]:
    """The lines of the notes' not-quoted blocks that say which pika they are written for."""
    return [
        (block, line)
        for block in python_blocks()
        if NOT_A_QUOTE.fullmatch(block.marker)
        for line in block.lines
        if re.search(r"# pika [01]\.x", line)
    ]


@pytest.mark.parametrize(
    ("block", "line"), pika_versions(), ids=[f"{b.where} {line}" for b, line in pika_versions()]
)
def test_pika_0_calls_in_the_notes_are_type_errors_on_pika_1(block, line):
    names = {"channel": SignatureOnly(), "callback": print}
    if "# pika 0.x" in line:
        with pytest.raises(TypeError):
            exec(line, names)
    else:
        exec(line, names)


def test_delivery_mode_2_is_the_older_spelling_of_persistent():
    # work_queues/README.md shows delivery_mode=2 as what older code writes.
    assert pika.DeliveryMode.Persistent == pika.DeliveryMode(2)


@pytest.mark.parametrize("chap", CHAPTERS, ids=lambda c: c.slug)
def test_each_chapter_quotes_each_of_its_scripts(chap):
    # rglob: a track's chapters are folders in its own (amqp10/hello_world/send.py).
    scripts = {path.relative_to(ROOT).as_posix() for path in (ROOT / chap.slug).rglob("*.py")}
    for note in (ROOT / chap.slug).glob("README*.md"):  # in each language
        quoted = {
            m[1] for b in blocks(note) if b.kind == "python" and (m := QUOTE.fullmatch(b.marker))
        }
        assert scripts - quoted == set(), note.name


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


# -- The pages in Chinese: the English page's sections and blocks, each linking to the other ----

PAIRS = list(CHINESE.items())
PAIR_IDS = [zh.relative_to(ROOT).as_posix() for zh in CHINESE.values()]


def prose(note: Path) -> list[str]:
    """The lines of a page outside its fenced blocks."""
    outside, fenced = [], False
    for line in note.read_text().splitlines():
        if re.fullmatch(r"\s*```\w*\s*", line):
            fenced = not fenced
        elif not fenced:
            outside.append(line)
    return outside


def headings(note: Path) -> list[str]:
    return [line for line in prose(note) if re.match(r"#{1,6} ", line)]


def anchors(note: Path) -> set[str]:
    """The ids GitHub gives a page's headings: lower case, punctuation (full-width too) and
    markup dropped, spaces made hyphens, -1, -2... after a repeated one; and <a name> anchors."""
    ids, seen = set(), collections.Counter()
    for heading in headings(note):
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.lstrip("#").strip()).lower()
        slug = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LMN")
        slug = slug.replace(" ", "-")
        ids.add(f"{slug}-{seen[slug]}" if seen[slug] else slug)
        seen[slug] += 1
    return ids | set(re.findall(r'<a name="([^"]+)"></a>', "\n".join(prose(note))))


def links(note: Path) -> list[str]:
    return [target for line in prose(note) for target in re.findall(r"\]\(([^)\s]+)\)", line)]


@pytest.mark.parametrize("note", NOTES, ids=[n.relative_to(ROOT).as_posix() for n in NOTES])
def test_links_to_a_section_find_it(note):
    for target in links(note):
        path, _, anchor = target.partition("#")
        if anchor and not re.match(r"[a-z]+:", target):
            page = note.parent / path if path else note
            assert page.exists(), f"{note.relative_to(ROOT)} links to {target}"
            assert anchor in anchors(page), f"{note.relative_to(ROOT)} links to {target}"


def same_block(block: Block) -> tuple:
    """What a block must keep in the other language: all of it (commands, output, quotes and
    their markers), but for a diagram's labels, which may be translated."""
    if block.kind != "mermaid":
        return block.kind, block.marker if block.kind == "python" else "", block.lines
    unlabelled = (re.sub(r'"[^"]*"', '""', line) for line in block.lines)  # flowchart labels
    return block.kind, "", tuple(re.sub(r"(:| as ).*", r"\1", line) for line in unlabelled)


def bench_table(note: Path) -> str | None:
    found = re.search(r"<!-- bench:start -->.*<!-- bench:end -->", note.read_text(), re.S)
    return found and found[0]


@pytest.mark.parametrize(("english", "chinese"), PAIRS, ids=PAIR_IDS)
def test_the_chinese_page_has_the_english_pages_sections_and_blocks(english, chinese):
    assert [h.split()[0] for h in headings(chinese)] == [h.split()[0] for h in headings(english)]
    zh_blocks, en_blocks = blocks(chinese), blocks(english)
    for zh, en in zip(zh_blocks, en_blocks, strict=False):  # first difference, then length
        assert same_block(zh) == same_block(en), f"{zh.where} differs from {en.where}"
    assert len(zh_blocks) == len(en_blocks), f"{chinese.relative_to(ROOT)}: blocks missing"
    assert bench_table(chinese) == bench_table(english)


def links_at_the_top(note: Path) -> list[str]:
    """The links of a page before its first section."""
    lines = prose(note)
    top = lines[: next(i for i, line in enumerate(lines) if line.startswith("## "))]
    return [target for line in top for target in re.findall(r"\]\(([^)\s]+)\)", line)]


@pytest.mark.parametrize(("english", "chinese"), PAIRS, ids=PAIR_IDS)
def test_the_two_languages_link_to_each_other_at_the_top(english, chinese):
    assert "README.zh-CN.md" in links_at_the_top(english), f"{english.relative_to(ROOT)}"
    assert "README.md" in links_at_the_top(chinese), f"{chinese.relative_to(ROOT)}"


@pytest.mark.parametrize("chinese", CHINESE.values(), ids=PAIR_IDS)
def test_a_chinese_page_links_to_the_chinese_pages(chinese):
    for target in links(chinese):
        page = (chinese.parent / target.partition("#")[0]).resolve()
        if page.name == "README.md" and page != chinese.with_name("README.md").resolve():
            assert not page.with_name("README.zh-CN.md").exists(), (
                f"{chinese.relative_to(ROOT)} links to {target}: link to its Chinese page"
            )


ZH_README = [zh for en, zh in PAIRS if en == ROOT / "README.md"]


@pytest.mark.parametrize("readme", ZH_README, ids=["README.zh-CN.md"][: len(ZH_README)])
def test_the_chinese_readme_links_every_chapter(readme):
    for chap in CHAPTERS:
        page = ROOT / chap.slug / "README.zh-CN.md"
        page = page if page.exists() else page.with_name("README.md")  # not translated yet
        assert page.relative_to(ROOT).as_posix() in links(readme), chap.slug


@pytest.mark.parametrize("readme", ZH_README, ids=["README.zh-CN.md"][: len(ZH_README)])
def test_the_chinese_readme_says_the_python_the_project_declares(readme):
    declared = re.search(r'requires-python = ">=(\d+\.\d+)"', (ROOT / "pyproject.toml").read_text())
    assert f"Python {declared[1]} 或更新版本" in readme.read_text()


def test_readme_commands_are_the_makefile_targets():
    makefile = (ROOT / "Makefile").read_text()
    for target in ("tour", "test", "broker", "inspect", "bench", "lint"):
        assert re.search(rf"^{target}:", makefile, re.M), target


def test_the_readme_says_the_python_the_project_declares():
    pyproject = (ROOT / "pyproject.toml").read_text()
    declared = re.search(r'requires-python = ">=(\d+\.\d+)"', pyproject)[1]
    assert f"Python {declared} or newer" in (ROOT / "README.md").read_text()
