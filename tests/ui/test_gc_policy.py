"""Garbage collection happens in the GUI thread, never in a worker thread."""

from __future__ import annotations

import gc
import threading

from aptviewer.ui import gc_policy


def test_the_collector_turns_automatic_gc_off_and_collects_on_its_timer(qtbot, qapp):
    collector = gc_policy.install(qapp)
    assert gc_policy.install(qapp) is collector  # installed once
    assert not gc.isenabled()

    collected_in = []

    class Cycle:
        def __init__(self):
            self.me = self

        def __del__(self):
            collected_in.append(threading.current_thread().name)

    def make_garbage_in_a_worker():
        Cycle()  # unreachable at once, but only a collection can free the cycle
        alive = [[] for _ in range(20_000)]  # would trigger automatic collections here
        del alive

    worker = threading.Thread(target=make_garbage_in_a_worker, name="worker")
    worker.start()
    worker.join()
    assert collected_in == []  # the worker's allocations did not collect it
    thresholds = gc.get_threshold()
    gc.set_threshold(1, 1, 1)
    try:
        for _ in range(1000):  # make the generation counts pass the thresholds
            [object() for _ in range(3)]
        qtbot.waitUntil(lambda: collected_in == ["MainThread"], timeout=5000)
    finally:
        gc.set_threshold(*thresholds)
