"""Topics: the topic exchange 'topic_logs' matches a dotted routing key against binding patterns.

In a binding key, * stands for exactly one word and # for zero or more words. The table is the
chapter's own (tutorial_tools/chapters.py), as the notes and the tour show it: Q1 bound to
*.orange.*, Q2 to *.*.rabbit and lazy.#, Q3 to #; and two rows more.
"""

from __future__ import annotations

import pytest

from tutorial_tools.chapters import TOPICS, route

Q1, Q2, Q3 = (terminal.name for terminal in TOPICS.terminals)
ROWS = [
    *TOPICS.steps,
    route("lazy.orange.elephant", "the official tutorial's example", Q1, Q2, Q3),
    route("lazy", "# matches zero words too", Q2, Q3),
]


@pytest.fixture(scope="module")
def terminals(module_sandbox):
    return module_sandbox.terminals(TOPICS)


@pytest.mark.parametrize("step", ROWS, ids=[step.says for step in ROWS])
def test_a_routing_key_reaches_the_queues_whose_patterns_match_it_once(terminals, step):
    assert terminals.arrivals(step) == TOPICS.promised(step, TOPICS.steps[-1])
