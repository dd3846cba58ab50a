# SPDX-License-Identifier: Apache-2.0
"""Type hints for agentsync: patterns, configuration, state and events.

Data keeps the seed's JSON shape (``agentId``, ``peerId``, ``totalSyncs``):
these dicts are what the wire, the daemon's HTTP API and the Node.js package
carry, so one guide serves all of them. Method and argument names are
snake_case.
"""

from __future__ import annotations

from typing import Any, Dict, List, Literal, NotRequired, TypedDict, Union

__all__ = [
    "PatternMetadata",
    "Pattern",
    "Tombstone",
    "PeerConfig",
    "TLSConfig",
    "RetryConfig",
    "NodeConfig",
    "PeerState",
    "NodeStats",
    "StoreState",
    "HubTenantState",
    "HubState",
    "NodeState",
    "Outcome",
    "ApplyResult",
    "BatchResult",
    "SyncResult",
    "SyncStats",
    "AgentStoreState",
    "EventName",
    "Event",
    "PeerConnectedEvent",
    "PeerDisconnectedEvent",
    "PeerErrorEvent",
    "PeerHealthEvent",
    "SyncCompletedEvent",
    "SyncFailedEvent",
    "PatternReceivedEvent",
    "PatternConflictEvent",
    "ConnectionRefusedEvent",
    "ConnectionTimeoutEvent",
    "OverflowEvent",
]


class PatternMetadata(TypedDict):
    """Seed 000's ``metadata``."""

    source: str
    tags: List[str]
    priority: NotRequired[int]  # 1-10
    expiresAt: NotRequired[int]  # ms since the epoch
    checksum: NotRequired[str]  # 64 hex digits, computed by the library when absent


class Pattern(TypedDict):
    """Seed 000's Pattern. Unknown top-level keys are kept."""

    id: str
    agentId: str
    type: str
    data: Any
    metadata: PatternMetadata
    timestamp: int  # ms since the epoch
    version: int  # >= 1; the higher version wins


class Tombstone(TypedDict):
    """A deletion, as ``pattern:received`` reports it."""

    deleted: Literal[True]
    id: str
    timestamp: int
    version: int


class PeerConfig(TypedDict):
    id: str
    address: str
    port: int
    priority: NotRequired[int]


class TLSConfig(TypedDict, total=False):
    cert: str
    key: str
    ca: str
    rejectUnauthorized: bool
    pins: List[str]
    keylogFile: str


class RetryConfig(TypedDict, total=False):
    maxAttempts: int
    baseDelay: int
    maxDelay: int
    backoffMultiplier: float


class NodeConfig(TypedDict, total=False):
    """The ``quic`` object of ``.agentic-qe/config/quic.json`` (seed 000), with
    agentsync's own keys; docs/ARCHITECTURE.md lists them all. Parsed and
    checked by agentsyncd's own parser."""

    enabled: bool
    nodeId: str
    port: int  # 0 picks a free port
    host: str
    peers: List[PeerConfig]
    syncInterval: int
    batchSize: int
    compression: bool
    tls: TLSConfig
    retry: RetryConfig
    dataDir: str
    tenant: str
    allow: List[str]
    window: int
    limits: Dict[str, int]
    rateLimit: Dict[str, float]
    filter: Dict[str, List[str]]
    healthInterval: int
    statelessRetry: bool
    idleTimeout: int
    keepAlive: int
    fsync: bool
    busyPoll: int
    log: Dict[str, str]
    hub: Dict[str, Any]


class PeerState(TypedDict):
    connected: bool
    syncCount: int
    errorCount: int
    latency: float  # ms, smoothed RTT
    lag: int  # changes the peer has not acknowledged
    address: str
    degraded: bool
    bytesIn: int
    bytesOut: int
    ackedSeq: int


class NodeStats(TypedDict):
    totalSyncs: int
    successfulSyncs: int
    failedSyncs: int
    averageLatency: float
    bytesTransferred: int
    compressionRatio: float


class StoreState(TypedDict):
    id: str
    patterns: int
    seq: int
    digest: str


class HubTenantState(TypedDict):
    tenant: str
    agentsConnected: int
    patterns: int
    changes: int
    changesReceived: int
    conflicts: int
    digest: str


class HubState(TypedDict):
    enabled: bool
    agentsConnected: NotRequired[int]
    authOk: NotRequired[int]
    authRefused: NotRequired[int]
    tenants: NotRequired[List[HubTenantState]]


class NodeState(TypedDict):
    """Seed 000's getState(), as ``GET /v1/state`` gives it. ``peers`` maps a
    peer id to its state. ``store`` is None before the store first exists;
    while stopped, ``stats`` are the last run's as of stop()."""

    nodeId: str
    running: bool
    connections: int
    stats: NodeStats
    peers: Dict[str, PeerState]
    store: StoreState | None
    hub: HubState


Outcome = Literal["inserted", "updated", "stale", "duplicate", "conflict_won", "conflict_lost"]


class ApplyResult(TypedDict):
    outcome: Outcome
    seq: int  # the change-log sequence given to it, 0 when nothing changed


# How many patterns of a batch had each outcome.
BatchResult = TypedDict(
    "BatchResult",
    {
        "inserted": int,
        "updated": int,
        "stale": int,
        "duplicate": int,
        "conflict_won": int,
        "conflict_lost": int,
    },
)


class SyncResult(TypedDict):
    """Seed 004's sync(): changes pulled and pushed since the last sync."""

    pulled: int
    pushed: int
    conflicts: int
    durationMs: float


class SyncStats(TypedDict):
    """Seed 004's getSyncStats(), and how the last connection was made."""

    lastSyncTime: int
    vectorClock: Dict[str, int]
    resumed: bool
    earlyData: bool


class AgentStoreState(TypedDict):
    patterns: int
    seq: int
    digest: str


EventName = Literal[
    "peer:connected",
    "peer:disconnected",
    "peer:error",
    "peer:health:degraded",
    "peer:health:recovered",
    "sync:completed",
    "sync:failed",
    "pattern:received",
    "connection:refused",
    "pattern:conflict",
    "sync:rejected",
    "store:rollback",
    "connection:timeout",
    "events:overflow",
]

# Event payloads: seed 000's, plus "type" (the event's name) and, in hub
# mode, "tenant".
PeerConnectedEvent = TypedDict(
    "PeerConnectedEvent",
    {"type": Literal["peer:connected"], "peerId": str, "address": str, "tenant": NotRequired[str]},
)
PeerDisconnectedEvent = TypedDict(
    "PeerDisconnectedEvent",
    {
        "type": Literal["peer:disconnected"],
        "peerId": str,
        "error": NotRequired[str],
        "address": NotRequired[str],
        "tenant": NotRequired[str],
    },
)
PeerErrorEvent = TypedDict(
    "PeerErrorEvent",
    {
        "type": Literal["peer:error"],
        "peerId": NotRequired[str],
        "error": str,
        "address": NotRequired[str],
        "tenant": NotRequired[str],
    },
)
PeerHealthEvent = TypedDict(
    "PeerHealthEvent",
    {
        "type": Literal["peer:health:degraded", "peer:health:recovered"],
        "peerId": str,
        "state": Any,
    },
)
SyncCompletedEvent = TypedDict(
    "SyncCompletedEvent",
    {
        "type": Literal["sync:completed"],
        "peerId": str,
        "patternCount": int,
        "latency": float,
        "tenant": NotRequired[str],
    },
)
SyncFailedEvent = TypedDict(
    "SyncFailedEvent",
    {
        "type": Literal["sync:failed"],
        "peerId": str,
        "patternId": NotRequired[str],
        "error": str,
        "tenant": NotRequired[str],
    },
)
PatternReceivedEvent = TypedDict(
    "PatternReceivedEvent",
    {
        "type": Literal["pattern:received"],
        "pattern": Union[Pattern, Tombstone],
        "sourceId": str,
        "tenant": NotRequired[str],
    },
)
PatternConflictEvent = TypedDict(
    "PatternConflictEvent",
    {
        "type": Literal["pattern:conflict"],
        "pattern": Pattern,
        "sourceId": str,
        "error": NotRequired[str],
        "tenant": NotRequired[str],
    },
)
ConnectionRefusedEvent = TypedDict(
    "ConnectionRefusedEvent",
    {"type": Literal["connection:refused"], "address": str, "error": str},
)
# A dial got no (complete) answer within quic.handshakeTimeout: not a refusal.
ConnectionTimeoutEvent = TypedDict(
    "ConnectionTimeoutEvent",
    {"type": Literal["connection:timeout"], "peerId": NotRequired[str], "address": str,
     "error": str},
)
# Events were dropped here: `dropped` of them (a queue was full). Never a silent gap.
OverflowEvent = TypedDict("OverflowEvent", {"type": Literal["events:overflow"], "dropped": int})

Event = Union[
    PeerConnectedEvent,
    PeerDisconnectedEvent,
    PeerErrorEvent,
    PeerHealthEvent,
    SyncCompletedEvent,
    SyncFailedEvent,
    PatternReceivedEvent,
    PatternConflictEvent,
    ConnectionRefusedEvent,
    ConnectionTimeoutEvent,
    OverflowEvent,
]
