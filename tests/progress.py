"""Progress a person can read: what is being started, then a line per test file as it is done.

pytest-xdist's workers print nothing of their own, and its row of dots says little about where
the run is. Instead, in the first process (not in a worker), and unless -v is given:
- one line first, on the brokers the workers are about to start, which take seconds;
- then a line per test file once all its tests have run: its counts, and the time so far;
- at the end, which build of RabbitMQ the tests that pin a version ran on;
- a passed or skipped test prints no letter (a failure still prints its F, and is reported in
  full at the end).
"""

from __future__ import annotations

import collections
import time

import pytest

from tutorial_tools.sources import BrokerUnavailable, choose_source

SOURCE_NAMES = {
    "url": "the broker at RABBITMQ_URL",
    "container": "a RabbitMQ container",
    "local": "a local rabbitmq-server",
}


def _file(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


class FileProgress:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.started = time.monotonic()
        self.expected: collections.Counter[str] = collections.Counter()
        self.outcomes: dict[str, collections.Counter[str]] = collections.defaultdict(
            collections.Counter
        )
        self.builds: set[str] = set()  # what the tests that pin a RabbitMQ version ran on

    def say(self, text: str) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter:
            reporter.write_line(text)

    def expect(self, nodeids: list[str]) -> None:
        if not self.expected:  # every worker collects the same tests
            self.expected.update(_file(nodeid) for nodeid in nodeids)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        try:
            source = choose_source()
        except BrokerUnavailable:
            return  # the broker fixture says why, once a test needs one
        workers = getattr(self.config.option, "numprocesses", None) or 0
        what = SOURCE_NAMES[source]
        if source == "url":
            self.say(f"Testing against {what}.")
        elif workers:
            self.say(f"Each of {workers} test workers starts {what} when it first needs one ...")
        else:
            self.say(f"Starting {what} when a test first needs one ...")

    @pytest.hookimpl(optionalhook=True)  # pytest-xdist's, in the first process
    def pytest_xdist_node_collection_finished(self, node, ids: list[str]) -> None:
        self.expect(ids)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.expect([item.nodeid for item in session.items])

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.builds.update(value for key, value in report.user_properties if key == "ran on")
        if report.when == "call" or (report.when == "setup" and not report.passed):
            path = _file(report.nodeid)
            outcome = "error" if report.when == "setup" and report.failed else report.outcome
            self.outcomes[path][outcome] += 1
            done = sum(self.outcomes[path].values())
            if done == self.expected.get(path):
                counts = ", ".join(f"{n} {what}" for what, n in sorted(self.outcomes[path].items()))
                seconds = time.monotonic() - self.started
                self.say(f"{seconds:5.0f} s  {path}: {counts}")

    def pytest_terminal_summary(self, terminalreporter) -> None:
        for build in sorted(self.builds):
            terminalreporter.write_line(f"The tests that pin a RabbitMQ version ran on {build}.")

    def pytest_report_teststatus(self, report: pytest.TestReport, config: pytest.Config):
        if report.when == "call" and report.passed:
            return "passed", "", "PASSED"  # no dot: the file's line says it
        if report.skipped:
            return "skipped", "", "SKIPPED"  # said in the file's line, and why at the end
        return None


def register(config: pytest.Config) -> None:
    """From conftest's pytest_configure: in the first process, unless -v is given."""
    if not hasattr(config, "workerinput") and config.getoption("verbose") <= 0:
        config.pluginmanager.register(FileProgress(config), "tutorial-file-progress")
