# SPDX-License-Identifier: Apache-2.0
"""The whole typed surface, as a program would use it: checked by mypy --strict
(tests/test_types.py), never run."""

from __future__ import annotations

import asyncio
import time
from typing import List

import agentsync
import agentsync.aio
from agentsync.types import (
    ApplyResult,
    BatchResult,
    Event,
    NodeConfig,
    NodeState,
    Pattern,
    PatternReceivedEvent,
    SyncResult,
    SyncStats,
)


def seed_000(config: NodeConfig) -> None:
    server = agentsync.Node(config)
    other = agentsync.Node.from_file(".agentic-qe/config/quic.json", node_id="agent-0")

    @server.on("pattern:received")
    def received(ev: PatternReceivedEvent) -> None:
        pattern = ev["pattern"]
        print(f"Received pattern {pattern['id']} from {ev['sourceId']}")

    server.on("peer:connected", lambda ev: print(ev["peerId"], ev["address"]))
    server.start()
    server.connect_peer("192.168.1.10", 4433, "agent-1")
    pattern: Pattern = {
        "id": "pattern_1",
        "agentId": "test-generator",
        "type": "test_execution",
        "data": {"testCase": "UserLogin", "result": "passed"},
        "metadata": {"source": "test-generator", "tags": ["unit", "auth"], "priority": 1},
        "timestamp": int(time.time() * 1000),
        "version": 1,
    }
    one: ApplyResult = server.sync_pattern(pattern)
    assert one["outcome"] in ("inserted", "updated", "stale", "duplicate", "conflict_won", "conflict_lost")
    server.sync_pattern(pattern, ["agent-1"])
    many: BatchResult = server.sync_patterns([pattern, pattern])
    print(many["inserted"] + many["duplicate"])
    state: NodeState = server.get_state()
    rate = state["stats"]["successfulSyncs"] / max(1, state["stats"]["totalSyncs"])
    for peer_id, peer in state["peers"].items():
        print(peer_id, peer["connected"], peer["syncCount"], peer["errorCount"], peer["latency"], rate)
    if state["store"] is not None:
        print(state["store"]["patterns"], state["store"]["digest"])
    cached: List[Pattern] = server.cached_patterns()
    found = server.query(type="test_execution", tag="unit", agent_id="test-generator", since=0, limit=10)
    got = server.get("pattern_1")
    if got is not None:
        print(got["metadata"]["tags"], len(cached), len(found))
    server.delete("pattern_1")
    server.stop()
    with other:
        pass
    try:
        server.sync_pattern(pattern)
    except agentsync.PatternError as e:
        print(e.field, e.code, e.index, e.message)
    except agentsync.Error as e:
        print(e.errno, e.offset)


async def asyncio_agent(config: NodeConfig) -> None:
    async with agentsync.aio.Node(config) as node:
        await node.connect_peer("127.0.0.1", 4433, "b")
        result: BatchResult = await node.sync_patterns([])
        print(result, await node.get_state())
        async with node.events(["pattern:received", "events:overflow"], maxsize=100) as stream:
            async for ev in stream:
                event: Event = ev  # type: ignore[assignment]  # events are dicts at runtime
                print(event["type"])
                break


def seed_004() -> None:
    hub = agentsync.FederationHub(endpoint="quic://hub.example:4433", token_file="agent.jwt",
                                  cert="agent.pem", key="agent-key.pem", ca="ca.pem",
                                  data_dir="./agent-7", agent_id="agent-7", tenant_id="acme")
    hub.connect()
    r: SyncResult = hub.sync()
    print(r["pulled"], r["pushed"], r["conflicts"], r["durationMs"], hub.is_connected())
    stats: SyncStats = hub.get_sync_stats()
    print(stats["lastSyncTime"], stats["vectorClock"].get("agent-7", 0))
    print(hub.cached_patterns(), hub.store_state()["digest"])
    hub.disconnect()
    hub.close()


async def seed_004_async() -> None:
    async with agentsync.aio.FederationHub(endpoint="quic://h:4433", token="t", cert="c",
                                           key="k", ca="a") as hub:
        await hub.connect()
        r: SyncResult = await hub.sync()
        print(r)


if __name__ == "__main__":
    asyncio.run(seed_004_async())
