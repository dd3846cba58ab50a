# SPDX-License-Identifier: Apache-2.0
"""Start and stop: no thread left behind, state true in every state, data kept."""

from __future__ import annotations

import asyncio
import gc
import threading

from conftest import WAIT_S, Collector, connect, node_config, pattern, settled_task_count, task_count

import agentsync
import agentsync.aio


def _threads():
    return sorted(t.name for t in threading.enumerate())


def test_start_stop_cycles_leave_no_thread_behind(certs, tmp_path):
    a = agentsync.Node(node_config(certs, "a", str(tmp_path)))
    b = agentsync.Node(node_config(certs, "b", str(tmp_path)))
    recv = Collector()
    b.on("pattern:received", recv)
    before_tasks, before = task_count(), _threads()
    for cycle in range(5):
        a.start()
        b.start()
        # Each cycle does real work: a connection, a pattern, its delivery.
        assert task_count() > before_tasks
        connect(a, b)
        a.sync_pattern(pattern(f"cycle-{cycle}"))
        recv.wait_for(lambda e: f"cycle-{cycle}" in recv.ids(), f"cycle-{cycle} at b")
        b.stop()
        a.stop()
        assert _threads() == before, f"cycle {cycle}: Python threads left: {_threads()}"
        left = settled_task_count(before_tasks) - before_tasks
        assert left == 0, f"cycle {cycle}: {left} threads left"
    assert sorted(recv.ids()) == [f"cycle-{i}" for i in range(5)]


def test_asyncio_cycles_leave_no_thread_behind(certs, tmp_path):
    before_tasks, before = task_count(), _threads()

    kept = []  # still referenced: their threads must end by stop(), not by garbage collection

    async def main():
        for cycle in range(3):
            async with agentsync.aio.Node(node_config(certs, "a", str(tmp_path))) as a:
                kept.append(a)
                await a.sync_pattern(pattern(f"aio-{cycle}"))
                assert (await a.get(f"aio-{cycle}"))["id"] == f"aio-{cycle}"

    asyncio.run(asyncio.wait_for(main(), WAIT_S))
    assert _threads() == before
    assert settled_task_count(before_tasks) == before_tasks
    assert len(kept) == 3


def test_a_node_dropped_while_running_is_stopped(certs, tmp_path):
    before_tasks = task_count()
    n = agentsync.Node(node_config(certs, "a", str(tmp_path)))
    n.start()
    assert task_count() > before_tasks
    del n
    gc.collect()
    assert settled_task_count(before_tasks) == before_tasks


def test_restart_keeps_the_data_and_the_state_is_true_when_stopped(certs, tmp_path):
    a = agentsync.Node(node_config(certs, "a", str(tmp_path), peers=[
        {"id": "b", "address": "127.0.0.1", "port": 9}]))
    st = a.get_state()
    assert st["running"] is False and st["connections"] == 0 and st["store"] is None
    assert st["stats"]["totalSyncs"] == 0
    assert st["peers"]["b"]["connected"] is False and st["peers"]["b"]["address"] == "127.0.0.1:9"
    with a:
        assert a.running and a.port > 0
        a.sync_patterns([pattern(f"keep-{i}") for i in range(10)])
        running = a.get_state()["store"]
    st = a.get_state()
    assert not a.running and a.port == 0
    assert st["running"] is False and st["connections"] == 0
    # The store as it is on disk: the same count, sequence and digest.
    assert st["store"] == running
    with a:
        assert len(a.cached_patterns()) == 10
        assert a.get_state()["store"] == running
    a.stop()  # idempotent


def test_stop_from_a_callback_while_the_program_stops_too(make_node):
    a, b = make_node("a"), make_node("b")
    in_callback, main_stopping, stopped = threading.Event(), threading.Event(), threading.Event()

    def on_recv(ev):
        if ev["pattern"]["id"] != "stop-me":
            return
        in_callback.set()
        main_stopping.wait(WAIT_S)
        b.stop()  # on b's own event thread, while the main thread is in stop() as well
        stopped.set()

    b.on("pattern:received", on_recv)
    connect(a, b)
    a.sync_pattern(pattern("stop-me"))
    # The callback must be running before the program stops b: a stop that came
    # first would leave no callback to race with (and none would ever run).
    assert in_callback.wait(WAIT_S), "b never received stop-me"
    stopper = threading.Thread(target=lambda: (main_stopping.set(), b.stop()))
    stopper.start()
    stopper.join(WAIT_S)
    assert not stopper.is_alive(), "stop() and a callback's stop() deadlocked"
    assert stopped.wait(WAIT_S) and not b.running
    # And the node starts again, with a new event thread, and works.
    again = Collector()
    b.on("pattern:received", again)
    b.start()
    connect(a, b)
    a.sync_pattern(pattern("after-restart"))
    again.wait_for(lambda e: "after-restart" in again.ids(), "after-restart at b")
