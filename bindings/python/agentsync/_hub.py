# SPDX-License-Identifier: Apache-2.0
"""agentsync.FederationHub: seed 004's hub client for ephemeral agents."""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, Iterable, List, Optional, TypeVar, Union, overload

from . import _agentsync
from ._errors import ConfigError, Error
from ._events import STREAM_MAXSIZE, Events, EventStream
from ._node import PatternLike, _pattern_arg, _register, _unregister
from .types import AgentStoreState, ApplyResult, EventName, Pattern, SyncResult, SyncStats

# A callback: it gets one event payload (a dict, typed in agentsync.types).
_F = TypeVar("_F", bound=Callable[..., Any])

__all__ = ["FederationHub"]

# The library names seed 004's camelCase keys; the arguments here are snake_case.
_FIELDS = {"agentId": "agent_id", "tenantId": "tenant_id", "hubId": "hub_id", "dataDir": "data_dir"}

_LOG_LEVELS = {"error": 0, "warn": 1, "info": 2, "debug": 3}

PathLike = Union[str, "os.PathLike[str]"]


class FederationHub:
    """An agent of a federation hub (an ``agentsyncd --hub``), seed 004's
    FederationHub: a local store synchronised with the hub over QUIC with
    mutual TLS, authenticated with a JWT whose ``sub`` is the agent id and
    whose ``tenant`` claim is its tenant.

    The store (in ``data_dir``) is opened and the agent's network thread
    started here; nothing is sent until :meth:`connect`. :meth:`close` (or
    ``with``) stops the thread and closes the store. A later run resumes the
    TLS session with 0-RTT from what ``data_dir`` keeps.

    ``agent_id`` and ``tenant_id`` are optional: when given they must equal
    the token's claims. ``token_file`` may replace ``token``.
    """

    def __init__(
        self,
        *,
        endpoint: str,
        token: Optional[str] = None,
        token_file: Optional[PathLike] = None,
        agent_id: Optional[str] = None,
        tenant_id: Optional[str] = None,
        cert: Optional[PathLike] = None,
        key: Optional[PathLike] = None,
        ca: Optional[PathLike] = None,
        data_dir: PathLike = "./agentsync-agent",
        hub_id: Optional[str] = None,
        enable_mtls: bool = True,
        timeout_ms: int = 30000,
        batch_size: int = 100,
        compression: bool = True,
        log_level: str = "info",
        max_queued_events: int = _agentsync.QUEUE_MAX_EVENTS,
    ) -> None:
        if not enable_mtls:
            raise ConfigError("agentsync always authenticates agents with mutual TLS",
                              code="AGS_ERR_CONFIG", errno=-16, field="enable_mtls")
        if token is not None and token_file is not None:
            raise ConfigError("give token or token_file, not both", code="AGS_ERR_CONFIG",
                              errno=-16, field="token_file")
        if token_file is not None:
            try:
                with open(token_file, encoding="utf-8") as f:
                    token = f.read().strip()
            except (OSError, UnicodeDecodeError) as e:
                raise ConfigError(f"cannot read it: {e}", code="AGS_ERR_CONFIG", errno=-16,
                                  field="token_file", file=os.fspath(token_file)) from None
        if log_level not in _LOG_LEVELS:
            raise ConfigError(f"must be one of {', '.join(_LOG_LEVELS)}, got {log_level!r}",
                              code="AGS_ERR_CONFIG", errno=-16, field="log_level")
        try:
            self._core = _agentsync._Agent(
                endpoint, token, agent_id, tenant_id, _p(data_dir), _p(cert), _p(key), _p(ca),
                hub_id, timeout_ms, batch_size, compression, _LOG_LEVELS[log_level],
                max_queued_events)
        except Error as e:
            if e.field in _FIELDS:
                e.field = _FIELDS[e.field]
            raise
        self._events = Events(self._core, f"agent-{self._core.agent_id}", "agentsync.agent")
        self._events.start()
        _register(self)

    # ---- seed 004 ----

    def connect(self) -> None:
        """Connects to the hub (QUIC handshake, resumed with 0-RTT when a
        previous run left the state for it; AUTH; HELLO). Raises AuthError
        with the hub's reason, TLSError, TimeoutError, ..."""
        self._core.connect()

    def sync(self) -> SyncResult:
        """Pushes every local change the hub has not acknowledged, then pulls
        every change of the tenant this agent lacks; returns once both are
        durable on both sides: {pulled, pushed, conflicts, durationMs}."""
        return self._core.sync()

    def disconnect(self) -> None:
        """Closes the connection (keeping the resumption state). Idempotent."""
        self._core.disconnect()

    def is_connected(self) -> bool:
        return self._core.is_connected()

    def get_sync_stats(self) -> SyncStats:
        """{lastSyncTime, vectorClock, resumed, earlyData}."""
        return self._core.get_sync_stats()

    # ---- the local store ----

    def put(self, pattern: PatternLike) -> ApplyResult:
        """Seed 004's insert/update: stored locally at once and durably,
        pushed on the next sync (at once while connected)."""
        return self._core.put(_pattern_arg(pattern))

    def delete(self, pattern_id: str) -> ApplyResult:
        """Deletes a local record (a tombstone, pushed like any change)."""
        return self._core.delete(pattern_id)

    def get(self, pattern_id: str) -> Optional[Pattern]:
        return self._core.get(pattern_id)

    def query(
        self,
        *,
        type: Optional[str] = None,
        tag: Optional[str] = None,
        agent_id: Optional[str] = None,
        since: int = 0,
        limit: int = 0,
    ) -> List[Pattern]:
        """Live local records, filtered as Node.query()."""
        return self._core.query(type=type, tag=tag, agent_id=agent_id, since=since, limit=limit)

    def cached_patterns(self) -> List[Pattern]:
        """Every live local record (the agent's own and those pulled)."""
        return self._core.query()

    def store_state(self) -> AgentStoreState:
        """{patterns, seq, digest} of the local store."""
        return self._core.store_state()

    @property
    def agent_id(self) -> Optional[str]:
        """The token's sub (None once closed)."""
        return self._core.agent_id

    # ---- lifecycle ----

    def close(self) -> None:
        """Disconnects, stops the network thread, closes the store, and ends
        the event thread and every ``async for``. Idempotent."""
        self._shutdown()

    def _shutdown(self) -> None:
        self._core.close()
        self._events.join()
        _unregister(self)

    def __del__(self) -> None:
        core = getattr(self, "_core", None)
        if core is not None and not core.closed:
            self._shutdown()

    def __enter__(self) -> "FederationHub":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---- events ----

    @overload
    def on(self, event: EventName) -> Callable[[_F], _F]: ...

    @overload
    def on(self, event: EventName, callback: _F) -> _F: ...

    def on(self, event: EventName, callback: Optional[_F] = None) -> Any:
        """As Node.on(): "pattern:received", "pattern:conflict", "peer:connected", ..."""
        if callback is None:
            def deco(fn: _F) -> _F:
                self._events.on(event, fn)
                return fn

            return deco
        self._events.on(event, callback)
        return callback

    def once(self, event: EventName, callback: Callable[[Any], Any]) -> None:
        self._events.once(event, callback)

    def off(self, event: EventName, callback: Optional[Callable[[Any], Any]] = None) -> None:
        self._events.off(event, callback)

    def events(self, types: Optional[Iterable[EventName]] = None, *, maxsize: int = STREAM_MAXSIZE) -> EventStream:
        """As Node.events(); ends when the hub is closed."""
        return self._events.stream(types, maxsize)

    def __repr__(self) -> str:
        state = "closed" if self._core.closed else ("connected" if self.is_connected() else "disconnected")
        return f"<agentsync.FederationHub {self.agent_id!r} {state}>"


def _p(p: Optional[PathLike]) -> Optional[str]:
    return None if p is None else os.fspath(p)
