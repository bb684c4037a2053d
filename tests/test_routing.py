"""Routing: the direct exchange 'direct_logs' delivers a log to the queues bound to its severity.

The table is the chapter's own (tutorial_tools/chapters.py), as the notes and the tour show it:
one receiver bound to error, one to info, warning and error.
"""

from __future__ import annotations

import pytest

from tutorial_tools.chapters import ROUTING, WAITING_LOGS, route


@pytest.fixture(scope="module")
def terminals(module_sandbox):
    return module_sandbox.terminals(ROUTING)


@pytest.mark.parametrize("step", ROUTING.steps, ids=[step.says for step in ROUTING.steps])
def test_each_severity_reaches_exactly_the_receivers_bound_to_it(terminals, step):
    assert terminals.arrivals(step) == ROUTING.promised(step, ROUTING.steps[-1])


def test_two_queues_bound_with_the_same_key_both_get_the_message(sandbox):
    first, second = (
        sandbox.start("routing/receive_logs_direct.py", "warning", ready=WAITING_LOGS)
        for _ in range(2)
    )
    step = route("warning", "Disk 90% full", script="routing/emit_log_direct.py")
    sandbox.run(step.script, *step.args)
    for receiver in (first, second):
        receiver.wait_for(r"^ \[x\] warning:Disk 90% full$")
    assert first.matching(r"^ \[x\] ") == second.matching(r"^ \[x\] ") == [step.expect[0].line]
