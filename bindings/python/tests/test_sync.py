# SPDX-License-Identifier: Apache-2.0
"""Two (or three) nodes in one process, on 127.0.0.1, syncing for real."""

from __future__ import annotations

import pytest
from conftest import Collector, connect, pattern

import agentsync


def test_single_pattern_reaches_the_peer(make_node):
    a, b = make_node("a"), make_node("b")
    got = Collector()
    b.on("pattern:received", got)
    connect(a, b)
    p = pattern("single-1", data={"testCase": "UserLogin", "result": "passed", "nested": [1, 2.5, None, True, "é"]})
    res = a.sync_pattern(p)
    assert res["outcome"] == "inserted" and res["seq"] >= 1
    evs = got.wait_for(lambda e: len(e) >= 1, "pattern:received at b")
    ev = evs[0]
    assert ev["type"] == "pattern:received"
    assert ev["sourceId"] == "a"
    assert ev["pattern"]["id"] == "single-1"
    assert ev["pattern"]["data"] == p["data"]
    assert len(ev["pattern"]["metadata"]["checksum"]) == 64
    # Durable in b's store, and equal to what a holds.
    assert b.get("single-1") == a.get("single-1")
    assert b.get("no-such-id") is None


def test_targeted_pattern_goes_only_to_the_named_peer(make_node):
    a, b, c = make_node("a"), make_node("b"), make_node("c")
    got_b, got_c = Collector(), Collector()
    b.on("pattern:received", got_b)
    c.on("pattern:received", got_c)
    connect(a, b)
    connect(a, c)
    assert a.sync_pattern(pattern("only-b"), peer_ids=["b"])["outcome"] == "inserted"
    got_b.wait_for(lambda e: "only-b" in got_b.ids(), "only-b at b")
    # A pattern for everyone, after it: once c has it, c would have had only-b too.
    a.sync_pattern(pattern("everyone"))
    got_c.wait_for(lambda e: "everyone" in got_c.ids(), "everyone at c")
    got_b.wait_for(lambda e: "everyone" in got_b.ids(), "everyone at b")
    assert "only-b" not in got_c.ids()
    assert c.get("only-b") is None
    assert b.get("only-b") is not None
    # One string is not a list of ids (it would be a list of its characters).
    with pytest.raises(TypeError, match="peer_ids"):
        a.sync_pattern(pattern("wrong"), peer_ids="b")


def test_batch_of_1000(make_node):
    a, b = make_node("a"), make_node("b")
    got = Collector()
    b.on("pattern:received", got)
    connect(a, b)
    counts = a.sync_patterns([pattern(f"batch-{i:04d}") for i in range(1000)])
    assert counts["inserted"] == 1000
    assert sum(counts.values()) == 1000
    got.wait_for(lambda e: len(e) >= 1000, "1000 patterns at b")
    assert sorted(got.ids()) == [f"batch-{i:04d}" for i in range(1000)]
    sb, sa = b.get_state(), a.get_state()
    assert sb["store"]["patterns"] == 1000
    assert sb["store"]["digest"] == sa["store"]["digest"]
    assert len(b.cached_patterns()) == 1000
    # A second time: every one a duplicate, nothing new sent.
    assert a.sync_patterns([pattern(f"batch-{i:04d}") for i in range(1000)])["duplicate"] == 1000
    # Larger than one transaction (1,000), with a part of one at the end.
    assert a.sync_patterns([pattern(f"big-{i:04d}") for i in range(2500)])["inserted"] == 2500
    got.wait_for(lambda e: len(e) >= 3500, "3500 patterns at b")
    assert b.get_state()["store"]["patterns"] == 3500


def test_version_rule_newer_replaces_older_is_ignored(make_node):
    a, b = make_node("a"), make_node("b")
    got = Collector()
    b.on("pattern:received", got)
    connect(a, b)
    assert a.sync_pattern(pattern("v", version=1))["outcome"] == "inserted"
    assert a.sync_pattern(pattern("v", version=3))["outcome"] == "updated"
    stale = a.sync_pattern(pattern("v", version=2))
    assert stale == {"outcome": "stale", "seq": 0}
    # A marker after them: once b has it, b has seen whatever a sent of "v".
    a.sync_pattern(pattern("marker"))
    got.wait_for(lambda e: "marker" in got.ids(), "marker at b")
    assert b.get("v")["version"] == 3
    assert a.get("v")["version"] == 3
    assert [e["pattern"]["version"] for e in got.events if e["pattern"]["id"] == "v"][-1] == 3


def test_delete_reaches_the_peer_as_a_tombstone(make_node):
    a, b = make_node("a"), make_node("b")
    got = Collector()
    b.on("pattern:received", got)
    connect(a, b)
    a.sync_pattern(pattern("gone"))
    got.wait_for(lambda e: "gone" in got.ids(), "gone at b")
    res = a.delete("gone")
    assert res["outcome"] == "updated"
    got.wait_for(lambda e: any(x["pattern"].get("deleted") for x in e), "the tombstone at b")
    assert b.get("gone") is None and a.get("gone") is None
    try:
        a.delete("gone")
    except agentsync.NotFoundError as e:
        assert e.code == "AGS_ERR_NOT_FOUND" and e.field == "id"
    else:
        raise AssertionError("deleting a deleted record must raise NotFoundError")


def test_state_shape_and_query(make_node):
    a, b = make_node("a"), make_node("b")
    connect(a, b)
    a.sync_patterns([pattern("q1", type="coverage_gap"), pattern("q2"),
                     pattern("q3", metadata={"source": "s", "tags": ["perf"]})])
    st = a.get_state()
    assert st["nodeId"] == "a" and st["running"] is True and st["connections"] == 1
    assert set(st["stats"]) == {"totalSyncs", "successfulSyncs", "failedSyncs", "averageLatency",
                                "bytesTransferred", "compressionRatio"}
    assert set(st["peers"]) == {"b"}
    peer = st["peers"]["b"]
    assert peer["connected"] is True
    for k in ("syncCount", "errorCount", "latency", "lag", "address"):
        assert k in peer
    assert st["store"]["patterns"] == 3 and st["store"]["seq"] == 3
    assert len(st["store"]["digest"]) == 64
    assert st["hub"] == {"enabled": False}
    assert [p["id"] for p in a.query(type="coverage_gap")] == ["q1"]
    assert [p["id"] for p in a.query(tag="perf")] == ["q3"]
    assert [p["id"] for p in a.query(since=1)] == ["q2", "q3"]
    assert [p["id"] for p in a.query(limit=2)] == ["q1", "q2"]
    assert [p["id"] for p in a.query(agent_id="test-generator", tag="unit")] == ["q1", "q2"]


def test_patterns_as_json_text(make_node):
    import json

    a = make_node("a")
    assert a.sync_pattern(json.dumps(pattern("text-1")))["outcome"] == "inserted"
    assert a.sync_patterns([json.dumps(pattern("text-2")).encode(), pattern("text-3")])["inserted"] == 2
    assert {p["id"] for p in a.cached_patterns()} == {"text-1", "text-2", "text-3"}


def test_large_integers_and_floats_round_trip(make_node):
    a = make_node("a")
    data = {"big": 2**62, "neg": -(2**63), "u64": 2**64 - 1, "f": 0.1, "e": 1e-300, "s": "\u00e9\U0001f600"}
    a.sync_pattern(pattern("nums", data=data))
    assert a.get("nums")["data"] == data
