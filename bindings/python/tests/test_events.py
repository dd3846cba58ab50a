# SPDX-License-Identifier: Apache-2.0
"""Events through callbacks (on the package's thread) and through async for."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest
from conftest import WAIT_S, Collector, connect, pattern

import agentsync


def test_callbacks_run_on_the_packages_thread_with_the_seeds_payloads(make_node):
    a, b = make_node("a"), make_node("b")
    conn_a, conn_b, done, recv = Collector(), Collector(), Collector(), Collector()
    a.on("peer:connected", conn_a)
    b.on("peer:connected", conn_b)
    a.on("sync:completed", done)
    b.on("pattern:received", recv)
    b.connect_peer("127.0.0.1", a.port, "a")
    conn_a.wait_for(lambda e: e, "peer:connected at a")
    conn_b.wait_for(lambda e: e, "peer:connected at b")
    ev = conn_a.events[0]
    assert ev["type"] == "peer:connected" and ev["peerId"] == "b"
    assert ev["address"].startswith("127.0.0.1:")
    a.sync_pattern(pattern("ev-1"))
    recv.wait_for(lambda e: e, "pattern:received")
    done.wait_for(lambda e: e, "sync:completed")
    sc = done.events[0]
    assert sc["peerId"] == "b" and sc["patternCount"] >= 1 and sc["latency"] >= 0
    pr = recv.events[0]
    assert set(pr) >= {"type", "pattern", "sourceId"} and pr["sourceId"] == "a"
    # Never the caller's thread nor the library's loop: the node's event thread.
    for c in (conn_a, conn_b, done, recv):
        assert all(t.startswith("agentsync-events-node-") for t in c.threads), c.threads
    gone = Collector()
    a.on("peer:disconnected", gone)
    b.disconnect_peer("a")
    gone.wait_for(lambda e: e, "peer:disconnected at a")
    assert gone.events[0]["peerId"] == "b"


def test_a_callback_that_raises_is_reported_and_the_rest_go_on(make_node, caplog):
    a, b = make_node("a"), make_node("b")
    seen = Collector()

    def bad(ev):
        raise RuntimeError("boom from a callback")

    b.on("pattern:received", bad)
    b.on("pattern:received", seen)
    connect(a, b)
    with caplog.at_level(logging.ERROR, logger="agentsync"):
        a.sync_pattern(pattern("r-1"))
        a.sync_pattern(pattern("r-2"))
        seen.wait_for(lambda e: len(e) >= 2, "both patterns despite the raising callback")
    assert b.callback_errors >= 2
    errs = [r for r in caplog.records if r.name == "agentsync" and r.exc_info]
    assert errs and "boom from a callback" in str(errs[0].exc_info[1])
    assert "'pattern:received' callback raised" in errs[0].getMessage()
    assert b.running


def test_decorator_once_and_off(make_node):
    a, b = make_node("a"), make_node("b")
    every, first = Collector(), Collector()

    @b.on("pattern:received")
    def handler(ev):
        every(ev)

    b.once("pattern:received", first)
    connect(a, b)
    a.sync_pattern(pattern("o-1"))
    every.wait_for(lambda e: len(e) >= 1, "o-1")
    a.sync_pattern(pattern("o-2"))
    every.wait_for(lambda e: len(e) >= 2, "o-2")
    assert [e["pattern"]["id"] for e in first.events] == ["o-1"]
    b.off("pattern:received", handler)
    with pytest.raises(ValueError, match="unknown event"):
        b.on("pattern:recieved", handler)


def test_async_for_with_a_type_filter(make_node):
    a, b = make_node("a"), make_node("b")

    async def main():
        stream = b.events(types=["pattern:received"])
        connect(a, b)  # peer:connected happens too, but is not asked for
        a.sync_patterns([pattern(f"as-{i}") for i in range(50)])
        ids = []
        async with stream:
            async for ev in stream:
                assert ev["type"] == "pattern:received"
                ids.append(ev["pattern"]["id"])
                if len(ids) == 50:
                    break
        return ids

    ids = asyncio.run(asyncio.wait_for(main(), WAIT_S))
    assert sorted(ids) == sorted(f"as-{i}" for i in range(50))


def test_async_for_ends_when_the_node_stops(make_node):
    a = make_node("a")

    async def main():
        stream = a.events()
        stopper = asyncio.get_running_loop().run_in_executor(None, a.stop)
        evs = [ev async for ev in stream]
        await stopper
        return evs

    assert asyncio.run(asyncio.wait_for(main(), WAIT_S)) == []


def test_a_slow_async_reader_gets_an_overflow_event_not_a_silent_gap(make_node):
    a, b = make_node("a"), make_node("b")
    n = 400

    async def main():
        stream = b.events(types=["pattern:received"], maxsize=50)
        connect(a, b)
        # Nothing is read until b holds every pattern: the stream must overflow.
        held = threading.Event()
        b.on("pattern:received", lambda ev: b.get_state()["store"]["patterns"] >= n and held.set())
        a.sync_patterns([pattern(f"ov-{i}") for i in range(n)])
        await asyncio.get_running_loop().run_in_executor(None, held.wait, WAIT_S)
        await asyncio.sleep(0.2)  # let the last hand-overs reach the loop
        received, dropped, order = 0, 0, []
        async for ev in stream:
            if ev["type"] == "events:overflow":
                dropped += ev["dropped"]
                order.append("gap")
            else:
                received += 1
                order.append("ev")
            if received + dropped >= n:
                break
        stream.close()
        return received, dropped, order

    received, dropped, order = asyncio.run(asyncio.wait_for(main(), WAIT_S))
    assert dropped > 0, "the stream never overflowed"
    assert received + dropped == n  # every event is either delivered or counted
    assert received <= 51 + order.count("gap")
    assert "gap" in order


def test_a_blocked_callback_overflows_the_bounded_queue_explicitly(certs, tmp_path):
    from conftest import node_config

    a = agentsync.Node(node_config(certs, "a", str(tmp_path)))
    b = agentsync.Node(node_config(certs, "b", str(tmp_path)), max_queued_events=100)
    release, first = threading.Event(), threading.Event()
    got = Collector()
    n = 1000

    def slow(ev):
        first.set()
        release.wait(WAIT_S)
        got(ev)

    b.on("pattern:received", slow)
    b.on("events:overflow", got)
    a.start()
    b.start()
    try:
        connect(a, b)
        a.sync_patterns([pattern(f"blk-{i}") for i in range(n)])
        assert first.wait(WAIT_S)
        # While the callback is blocked, b still stores everything (its loop never waits).
        held = threading.Event()

        def check():
            while not held.is_set():
                if b.get_state()["store"]["patterns"] >= n:
                    held.set()
                    return
                threading.Event().wait(0.05)

        t = threading.Thread(target=check)
        t.start()
        t.join(WAIT_S)
        assert held.is_set(), "b stopped storing while a callback was blocked"
        release.set()
        got.wait_for(lambda e: got.count("pattern:received") + sum(
            x["dropped"] for x in e if x["type"] == "events:overflow") >= n, "every event or its count")
        dropped = sum(x["dropped"] for x in got.events if x["type"] == "events:overflow")
        assert dropped > 0
        assert got.count("pattern:received") + dropped == n
    finally:
        release.set()
        a.stop()
        b.stop()


def test_events_outside_a_loop_says_what_to_do(make_node):
    a = make_node("a")
    with pytest.raises(RuntimeError, match="asyncio"):
        a.events()
