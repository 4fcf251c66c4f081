"""The one worker pattern: signals, cancellation, and the thread's lifetime."""

from __future__ import annotations

import threading

import pytest

from aptviewer.core.errors import DataFormatError, OperationCancelled
from aptviewer.core.progress import raise_if_cancelled
from aptviewer.ui.worker import Task, Worker


class Recorder:
    def __init__(self, worker):
        self.events = []
        worker.chunk_processed.connect(lambda g, p: self.events.append(("chunk", g, p)))
        worker.finished.connect(lambda g, r: self.events.append(("finished", g, r)))
        worker.failed.connect(lambda g, e: self.events.append(("failed", g, e)))
        worker.cancelled.connect(lambda g: self.events.append(("cancelled", g)))
        worker.ended.connect(lambda g: self.events.append(("ended", g)))

    def kinds(self):
        return [event[0] for event in self.events]


def counting_job(n_chunks, gate=None):
    def job(report, cancel):
        total = 0
        for i in range(n_chunks):
            raise_if_cancelled(cancel, "counting")
            total += i
            report(i)
            if gate is not None and i == 0:
                gate.wait_here()
        return total
    return job


def test_synchronous_run_reports_every_chunk_then_finished():
    worker = Worker(counting_job(4), generation=7)
    record = Recorder(worker)
    worker.run()
    assert record.kinds() == ["chunk"] * 4 + ["finished", "ended"]
    assert [e[2] for e in record.events[:4]] == [0, 1, 2, 3]
    assert record.events[4] == ("finished", 7, 6)
    assert all(event[1] == 7 for event in record.events)


def test_a_failing_job_emits_failed_with_the_exception():
    error = DataFormatError("/data/x.epos", "truncated")

    def job(report, cancel):
        raise error

    worker = Worker(job, generation=1)
    record = Recorder(worker)
    worker.run()
    assert record.kinds() == ["failed", "ended"]
    assert record.events[0][2] is error


def test_cancel_before_run_emits_cancelled_never_finished():
    worker = Worker(counting_job(3), generation=2)
    record = Recorder(worker)
    worker.cancel()
    worker.run()
    assert record.kinds() == ["cancelled", "ended"]


def test_a_job_that_ignores_the_flag_still_ends_cancelled():
    # The flag was set while the last chunk was processed: the result is not delivered.
    def job(report, cancel):
        cancel.set()
        return 42

    worker = Worker(job, generation=3)
    record = Recorder(worker)
    worker.run()
    assert record.kinds() == ["cancelled", "ended"]


def test_an_error_after_cancel_is_a_cancel_not_a_failure():
    def job(report, cancel):
        cancel.set()
        raise OSError("file closed under the reader")

    worker = Worker(job, generation=4)
    record = Recorder(worker)
    worker.run()
    assert record.kinds() == ["cancelled", "ended"]


def test_task_runs_the_job_on_another_thread_and_the_thread_stops(qtbot):
    seen = {}

    def job(report, cancel):
        seen["thread"] = threading.get_ident()
        return "done"

    task = Task(Worker(job, generation=5), "test")
    # Plain callables run in the emitting thread: record, and wait in the GUI thread.
    results = []
    task.worker.finished.connect(lambda g, r: results.append((g, r)))
    with qtbot.waitSignal(task.stopped, timeout=5000):
        task.start()
    assert results == [(5, "done")]
    assert not task.running
    assert seen["thread"] != threading.get_ident()


def test_task_cancel_stops_between_chunks(qtbot, gate):
    task = Task(Worker(counting_job(1000, gate), generation=6), "test")
    record = Recorder(task.worker)
    task.start()
    qtbot.waitUntil(gate.reached.is_set, timeout=5000)
    with qtbot.waitSignal(task.stopped, timeout=5000):
        task.cancel()
        gate.release()
    assert record.kinds() == ["chunk", "cancelled", "ended"]


@pytest.mark.parametrize("outcome", ["finished", "failed", "cancelled"])
def test_stopped_is_emitted_in_the_gui_thread_whatever_the_outcome(qtbot, outcome):
    def job(report, cancel):
        if outcome == "failed":
            raise ValueError("bad")
        if outcome == "cancelled":
            raise OperationCancelled("stop")
        return 1

    task = Task(Worker(job, generation=8), "test")
    where = []
    task.stopped.connect(lambda: where.append(threading.get_ident()))
    with qtbot.waitSignal(task.stopped, timeout=5000):
        task.start()
    assert where == [threading.get_ident()]
    assert not task.running
