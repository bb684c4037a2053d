"""Progress a person can read: what is being started, then a line per test file as it is done.

pytest-xdist's workers print nothing of their own, and its row of dots says little about where
the run is. Instead, in the first process (not in a worker), and unless -v is given:
- one line first, on the brokers the workers are about to start, which take seconds;
- then a line per test file once all its tests have run: its counts, and the time so far;
- after 15 s without a line, one saying how many tests are done and which files are running;
- at the end, which build of RabbitMQ the tests that pin a version ran on, and what the tests
  that count messages under a fault counted (sent, done, delivered twice, lost);
- a passed or skipped test prints no letter (a failure still prints its F, and is reported in
  full at the end).
"""

from __future__ import annotations

import collections
import threading
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
        self.counted: list[str] = []  # what the tests that count messages under a fault found
        self.running: dict[str, None] = {}  # the files begun and not yet done, in that order
        self.done = 0  # tests done (read by the thread that speaks up, never iterated there)
        self.lock = threading.Lock()
        self.last_said = self.started
        self.over = threading.Event()

    def say(self, text: str) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        with self.lock:
            self.last_said = time.monotonic()
            if reporter:
                reporter.write_line(text)

    def seconds(self) -> str:
        return f"{time.monotonic() - self.started:5.0f} s"

    def _speak_up(self, quiet: float = 15) -> None:
        """Say where the run is whenever it has been quiet for ``quiet`` seconds."""
        while not self.over.wait(1):
            if time.monotonic() - self.last_said >= quiet:
                files = ", ".join(path.removeprefix("tests/") for path in list(self.running))
                total = sum(self.expected.values())
                self.say(f"{self.seconds()}  {self.done} of {total} tests done; running {files}")

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
        threading.Thread(target=self._speak_up, daemon=True, name="progress").start()

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        self.running.setdefault(_file(nodeid))

    @pytest.hookimpl(optionalhook=True)  # pytest-xdist's, in the first process
    def pytest_xdist_node_collection_finished(self, node, ids: list[str]) -> None:
        self.expect(ids)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.expect([item.nodeid for item in session.items])

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.builds.update(value for key, value in report.user_properties if key == "ran on")
        name = report.nodeid.rpartition("::")[2]
        for key, value in report.user_properties:  # in the reports of each phase after it
            if key == "counted" and f"{name}: {value}" not in self.counted:
                self.counted.append(f"{name}: {value}")
        if report.when == "call" or (report.when == "setup" and not report.passed):
            path = _file(report.nodeid)
            outcome = "error" if report.when == "setup" and report.failed else report.outcome
            self.outcomes[path][outcome] += 1
            self.done += 1
            done = sum(self.outcomes[path].values())
            if done == self.expected.get(path):
                self.running.pop(path, None)
                counts = ", ".join(f"{n} {what}" for what, n in sorted(self.outcomes[path].items()))
                self.say(f"{self.seconds()}  {path}: {counts}")

    def pytest_sessionfinish(self) -> None:
        self.over.set()

    def pytest_terminal_summary(self, terminalreporter) -> None:
        for build in sorted(self.builds):
            terminalreporter.write_line(f"The tests that pin a RabbitMQ version ran on {build}.")
        for line in self.counted:
            terminalreporter.write_line(f"Counted by {line}")

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
