# SPDX-License-Identifier: Apache-2.0
"""agentsync for asyncio: the same Node and FederationHub, with awaitable calls.

Every call that may wait runs on a small thread pool of the object's own,
with the GIL released inside the library, so the event loop is never blocked
by it: ``await node.sync_patterns(patterns)`` converts and checks the
patterns in chunks (the loop runs between them) and stores them without
the GIL. Events come through ``async for event in node.events()``.

    async with agentsync.aio.Node(config) as node:
        async for ev in node.events(["pattern:received"]):
            ...
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import os
from typing import (
    Any,
    Callable,
    Iterable,
    List,
    Mapping,
    Optional,
    Sequence,
    TypeVar,
    Union,
    overload,
)

from . import _agentsync, _hub, _node
from ._events import STREAM_MAXSIZE, EventStream
from .types import (
    AgentStoreState,
    ApplyResult,
    BatchResult,
    EventName,
    NodeConfig,
    NodeState,
    Pattern,
    SyncResult,
    SyncStats,
)

__all__ = ["Node", "FederationHub"]

T = TypeVar("T")
_F = TypeVar("_F", bound=Callable[..., Any])

# Threads of one object's pool: enough that a read is not queued behind a long write.
_WORKERS = 4


class _Pool:
    """A thread pool made on first use and shut down (threads joined) by close()."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._pool: Optional[concurrent.futures.ThreadPoolExecutor] = None

    async def run(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=_WORKERS, thread_name_prefix=f"agentsync-aio-{self._name}")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kw))

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            # Idle by now (the caller awaited its last call): the join is immediate.
            pool.shutdown(wait=True)


class Node:
    """agentsync.Node for asyncio programs; see agentsync.Node for the semantics."""

    def __init__(
        self,
        config: Union[NodeConfig, Mapping[str, Any], None] = None,
        *,
        node_id: Optional[str] = None,
        data_dir: Optional[Union[str, "os.PathLike[str]"]] = None,
        max_queued_events: int = _agentsync.QUEUE_MAX_EVENTS,
    ) -> None:
        self._init(_node.Node(config, node_id=node_id, data_dir=data_dir,
                              max_queued_events=max_queued_events))

    @classmethod
    def from_file(
        cls,
        path: Union[str, "os.PathLike[str]"] = ".agentic-qe/config/quic.json",
        *,
        node_id: Optional[str] = None,
        data_dir: Optional[Union[str, "os.PathLike[str]"]] = None,
        max_queued_events: int = _agentsync.QUEUE_MAX_EVENTS,
    ) -> "Node":
        self = cls.__new__(cls)
        self._init(_node.Node.from_file(path, node_id=node_id, data_dir=data_dir,
                                        max_queued_events=max_queued_events))
        return self

    def _init(self, node: _node.Node) -> None:
        self.blocking = node  # the agentsync.Node underneath, for code outside the loop
        self._pool = _Pool(node.node_id)

    async def start(self) -> None:
        await self._pool.run(self.blocking.start)

    async def stop(self) -> None:
        try:
            await self._pool.run(self.blocking.stop)
        finally:
            self._pool.close()

    async def __aenter__(self) -> "Node":
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    async def connect_peer(self, address: str, port: int, peer_id: str) -> None:
        await self._pool.run(self.blocking.connect_peer, address, port, peer_id)

    async def disconnect_peer(self, peer_id: str) -> None:
        await self._pool.run(self.blocking.disconnect_peer, peer_id)

    async def sync_pattern(self, pattern: _node.PatternLike, peer_ids: Optional[Sequence[str]] = None) -> ApplyResult:
        return await self._pool.run(self.blocking.sync_pattern, pattern, peer_ids)

    async def sync_patterns(self, patterns: Iterable[_node.PatternLike]) -> BatchResult:
        return await self._pool.run(self.blocking.sync_patterns, patterns)

    async def delete(self, pattern_id: str) -> ApplyResult:
        return await self._pool.run(self.blocking.delete, pattern_id)

    async def get(self, pattern_id: str) -> Optional[Pattern]:
        return await self._pool.run(self.blocking.get, pattern_id)

    async def query(self, *, type: Optional[str] = None, tag: Optional[str] = None,
                    agent_id: Optional[str] = None, since: int = 0, limit: int = 0) -> List[Pattern]:
        return await self._pool.run(self.blocking.query, type=type, tag=tag, agent_id=agent_id,
                                    since=since, limit=limit)

    async def cached_patterns(self) -> List[Pattern]:
        return await self._pool.run(self.blocking.cached_patterns)

    async def get_state(self) -> NodeState:
        return await self._pool.run(self.blocking.get_state)

    async def sync_now(self) -> None:
        await self._pool.run(self.blocking.sync_now)

    async def reload_tls(self) -> None:
        await self._pool.run(self.blocking.reload_tls)

    @overload
    def on(self, event: EventName) -> Callable[[_F], _F]: ...

    @overload
    def on(self, event: EventName, callback: _F) -> _F: ...

    def on(self, event: EventName, callback: Optional[_F] = None) -> Any:
        """As agentsync.Node.on(): callbacks run on the node's event thread."""
        if callback is None:
            return self.blocking.on(event)
        return self.blocking.on(event, callback)

    def off(self, event: EventName, callback: Optional[Callable[[Any], Any]] = None) -> None:
        self.blocking.off(event, callback)

    def once(self, event: EventName, callback: Callable[[Any], Any]) -> None:
        self.blocking.once(event, callback)

    def events(self, types: Optional[Iterable[EventName]] = None, *, maxsize: int = STREAM_MAXSIZE) -> EventStream:
        return self.blocking.events(types, maxsize=maxsize)

    @property
    def node_id(self) -> str:
        return self.blocking.node_id

    @property
    def port(self) -> int:
        return self.blocking.port

    @property
    def running(self) -> bool:
        return self.blocking.running


class FederationHub:
    """agentsync.FederationHub for asyncio programs (same arguments)."""

    def __init__(self, **kwargs: Any) -> None:
        self.blocking = _hub.FederationHub(**kwargs)  # the blocking one underneath
        self._pool = _Pool(self.blocking.agent_id or "agent")

    async def connect(self) -> None:
        await self._pool.run(self.blocking.connect)

    async def sync(self) -> SyncResult:
        """Seed 004's sync(): push, then pull; {pulled, pushed, conflicts, durationMs}."""
        return await self._pool.run(self.blocking.sync)

    async def disconnect(self) -> None:
        await self._pool.run(self.blocking.disconnect)

    def is_connected(self) -> bool:
        return self.blocking.is_connected()

    def get_sync_stats(self) -> SyncStats:
        return self.blocking.get_sync_stats()

    async def put(self, pattern: _node.PatternLike) -> ApplyResult:
        return await self._pool.run(self.blocking.put, pattern)

    async def delete(self, pattern_id: str) -> ApplyResult:
        return await self._pool.run(self.blocking.delete, pattern_id)

    async def get(self, pattern_id: str) -> Optional[Pattern]:
        return await self._pool.run(self.blocking.get, pattern_id)

    async def query(self, **kw: Any) -> List[Pattern]:
        return await self._pool.run(self.blocking.query, **kw)

    async def cached_patterns(self) -> List[Pattern]:
        return await self._pool.run(self.blocking.cached_patterns)

    async def store_state(self) -> AgentStoreState:
        return await self._pool.run(self.blocking.store_state)

    async def close(self) -> None:
        try:
            await self._pool.run(self.blocking.close)
        finally:
            self._pool.close()

    async def __aenter__(self) -> "FederationHub":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    @overload
    def on(self, event: EventName) -> Callable[[_F], _F]: ...

    @overload
    def on(self, event: EventName, callback: _F) -> _F: ...

    def on(self, event: EventName, callback: Optional[_F] = None) -> Any:
        if callback is None:
            return self.blocking.on(event)
        return self.blocking.on(event, callback)

    def off(self, event: EventName, callback: Optional[Callable[[Any], Any]] = None) -> None:
        self.blocking.off(event, callback)

    def events(self, types: Optional[Iterable[EventName]] = None, *, maxsize: int = STREAM_MAXSIZE) -> EventStream:
        return self.blocking.events(types, maxsize=maxsize)

    @property
    def agent_id(self) -> Optional[str]:
        return self.blocking.agent_id
