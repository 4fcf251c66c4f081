"""The task runner: per-task callbacks, one live run per kind, stale signals dropped."""

from __future__ import annotations

from aptviewer.core.errors import DataFormatError
from aptviewer.core.progress import raise_if_cancelled
from aptviewer.ui.tasks import TaskRunner


def gated_job(gate, result, reports=(1, 2)):
    def job(report, cancel):
        for value in reports:
            report(value)
        gate.wait_here()
        raise_if_cancelled(cancel, "test job")
        return result
    return job


def quick_job(result):
    return lambda report, cancel: result


def failing_job(report, cancel):
    raise DataFormatError("bad.epos", "not an EPOS file")


def test_callbacks_of_one_run_receive_its_progress_and_result(qtbot, gate):
    runner = TaskRunner()
    seen = []
    runner.start("a", gated_job(gate, 42), on_progress=seen.append,
                 on_finished=lambda r: seen.append(("done", r)))
    qtbot.waitUntil(lambda: len(seen) == 2)
    assert runner.is_live("a")
    with qtbot.waitSignal(runner.task_ended, check_params_cb=lambda k, o: (k, o) == ("a", "finished")):
        gate.release()
    assert seen == [1, 2, ("done", 42)]
    assert not runner.is_live("a") and runner.current("a") is None
    qtbot.waitUntil(lambda: not runner.running())


def test_starting_a_kind_cancels_its_running_run_and_drops_its_signals(qtbot, gate):
    runner = TaskRunner()
    first, second, ended = [], [], []
    runner.task_ended.connect(lambda k, o: ended.append((k, o)))
    g1 = runner.start("a", gated_job(gate, "old"), on_finished=first.append, on_cancelled=lambda: first.append("x"))
    g2 = runner.start("a", quick_job("new"), on_finished=second.append)
    assert g2 > g1 and runner.current("a") == g2 and runner.latest() == g2
    qtbot.waitUntil(lambda: second == ["new"])
    gate.release()
    qtbot.waitUntil(lambda: not runner.running())
    assert first == []                       # the superseded run's end is silent
    assert ended == [("a", "finished")]


def test_runs_of_different_kinds_live_side_by_side(qtbot, gate):
    runner = TaskRunner()
    results = {}
    runner.start("a", gated_job(gate, 1), on_finished=lambda r: results.__setitem__("a", r))
    runner.start("b", quick_job(2), on_finished=lambda r: results.__setitem__("b", r))
    qtbot.waitUntil(lambda: "b" in results)
    assert runner.is_live("a")
    gate.release()
    qtbot.waitUntil(lambda: results == {"a": 1, "b": 2})
    qtbot.waitUntil(lambda: not runner.running())


def test_cancel_all_reports_cancelled_to_live_runs(qtbot, gate):
    runner = TaskRunner()
    outcome = []
    runner.start("a", gated_job(gate, 1, reports=(1,)), on_progress=lambda p: None,
                 on_finished=lambda r: outcome.append("finished"), on_cancelled=lambda: outcome.append("cancelled"))
    runner.cancel_all()
    gate.release()
    qtbot.waitUntil(lambda: outcome == ["cancelled"])
    qtbot.waitUntil(lambda: not runner.running())


def test_a_failure_without_handler_is_announced_once(qtbot):
    runner = TaskRunner()
    unhandled, handled = [], []
    runner.unhandled_failure.connect(lambda k, e: unhandled.append((k, str(e))))
    with qtbot.waitSignal(runner.task_ended):
        runner.start("a", failing_job)
    with qtbot.waitSignal(runner.task_ended):
        runner.start("b", failing_job, on_failed=lambda e: handled.append(str(e)))
    assert len(unhandled) == 1 and unhandled[0][0] == "a" and "not an EPOS file" in unhandled[0][1]
    assert len(handled) == 1 and "not an EPOS file" in handled[0]
    qtbot.waitUntil(lambda: not runner.running())


def test_only_the_latest_run_owns_the_status(qtbot, gate):
    runner = TaskRunner()
    owns = {}
    runner.start("a", gated_job(gate, 1, reports=()), on_finished=lambda r: owns.__setitem__("a", runner.calling_latest()))
    runner.start("b", quick_job(2), on_finished=lambda r: owns.__setitem__("b", runner.calling_latest()))
    qtbot.waitUntil(lambda: "b" in owns)
    gate.release()
    qtbot.waitUntil(lambda: "a" in owns)
    assert owns == {"a": False, "b": True}
    assert not runner.calling_latest()       # outside a callback
    qtbot.waitUntil(lambda: not runner.running())


def test_reads_tells_whether_a_running_task_holds_a_table(qtbot, gate):
    runner = TaskRunner()
    table, other = object(), object()
    runner.start("a", gated_job(gate, 1, reports=()), table=table)
    assert runner.reads(table) and not runner.reads(other)
    gate.release()
    qtbot.waitUntil(lambda: not runner.running())
    assert not runner.reads(table)
