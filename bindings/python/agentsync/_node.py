# SPDX-License-Identifier: Apache-2.0
"""agentsync.Node: seed 000's QUICServer, embedded in the Python process."""

from __future__ import annotations

import atexit
import json
import os
import threading
import warnings
import weakref
from collections.abc import Mapping
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, TypeVar, Union, overload

from . import _agentsync
from ._errors import ConfigError, ConfigWarning
from ._events import STREAM_MAXSIZE, Events, EventStream
from .types import (
    ApplyResult,
    BatchResult,
    EventName,
    NodeConfig,
    NodeState,
    Pattern,
)

# A callback: it gets one event payload (a dict, typed in agentsync.types).
_F = TypeVar("_F", bound=Callable[..., Any])

__all__ = ["Node"]

PatternLike = Union[Pattern, Mapping[str, Any], str, bytes]

# Nodes and hubs still running: stopped when the interpreter exits.
_live: "weakref.WeakSet[Any]" = weakref.WeakSet()
_live_lock = threading.Lock()


@atexit.register
def _stop_all() -> None:
    with _live_lock:
        objs = list(_live)
    for o in objs:
        try:
            o._shutdown()
        except Exception:  # pragma: no cover - best effort at exit
            pass


def _register(obj: Any) -> None:
    with _live_lock:
        _live.add(obj)


def _unregister(obj: Any) -> None:
    with _live_lock:
        _live.discard(obj)


def _pattern_arg(p: PatternLike) -> Any:
    # The extension walks dicts itself; other mappings become dicts first.
    if isinstance(p, (dict, str, bytes)):
        return p
    if isinstance(p, Mapping):
        return dict(p)
    return p  # the extension names what is wrong with it


class Node:
    """An agentsync node: a store kept in sync with its peers over QUIC.

    ``config`` is the ``quic`` object of seed 000's
    ``.agentic-qe/config/quic.json`` (or the whole file, with its ``quic``
    key), parsed and checked by agentsyncd's own parser: the same keys,
    defaults and errors (a :class:`ConfigError` naming the JSON path, e.g.
    ``quic.peers[1].port``). ``node_id`` and ``data_dir`` replace
    ``nodeId`` and ``dataDir`` as agentsyncd's ``--node-id`` and ``--data``
    do. Without ``tls.cert`` the node makes (once) a self-signed CA and a
    certificate in ``dataDir/certs``, as agentsyncd does; peers then need
    certificates from that CA.

    ``max_queued_events`` bounds the events waiting for the node's event
    thread (callbacks that fall behind): past it, events are dropped and an
    ``events:overflow`` event says how many.

    Every method may be called from any thread; those that wait release the
    GIL. Event callbacks run on a thread of the node's own (see :meth:`on`).
    """

    def __init__(
        self,
        config: Union[NodeConfig, Mapping[str, Any], None] = None,
        *,
        node_id: Optional[str] = None,
        data_dir: Optional[Union[str, "os.PathLike[str]"]] = None,
        max_queued_events: int = _agentsync.QUEUE_MAX_EVENTS,
    ) -> None:
        if config is None:
            config = {}
        if not isinstance(config, Mapping):
            raise TypeError(f"config must be a dict (the 'quic' object), got {type(config).__name__}")
        doc = dict(config) if "quic" in config else {"quic": dict(config)}
        try:
            text = json.dumps(doc, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"the configuration is not JSON: {e}", code="AGS_ERR_CONFIG",
                              errno=-16) from None
        core = _agentsync._Node(text, None, node_id, _path(data_dir), max_queued_events)
        self._setup(core)

    @classmethod
    def from_file(
        cls,
        path: Union[str, "os.PathLike[str]"] = ".agentic-qe/config/quic.json",
        *,
        node_id: Optional[str] = None,
        data_dir: Optional[Union[str, "os.PathLike[str]"]] = None,
        max_queued_events: int = _agentsync.QUEUE_MAX_EVENTS,
    ) -> "Node":
        """A node from a configuration file, read as agentsyncd reads it
        (relative paths in it are relative to the working directory)."""
        p = os.fspath(path)
        try:
            core = _agentsync._Node(None, p, node_id, _path(data_dir), max_queued_events)
        except ConfigError as e:
            e.file = p
            raise
        self = cls.__new__(cls)
        self._setup(core)
        return self

    def _setup(self, core: _agentsync._Node) -> None:
        self._core = core
        self._events = Events(core, f"node-{core.node_id}", "agentsync.node")
        for w in core.warnings:
            warnings.warn(w, ConfigWarning, stacklevel=3)

    # ---- lifecycle ----

    def start(self) -> None:
        """Opens the store, binds the UDP port, connects the configured peers.
        Returns once the node listens. Raises StateError when already started,
        TLSError, StoreError, ..."""
        # No lock of ours is held while a thread is joined: a callback may
        # call start() or stop() itself, on the event thread.
        if self._core.running:
            self._core.start()  # raises StateError: already started
        self._events.join()  # the last run's event thread, if still delivering
        self._core.start()
        self._events.start()
        _register(self)

    def stop(self) -> None:
        """Closes every connection, waits for the node's threads, closes the
        store; then delivers the last events and ends the event thread and
        every ``async for``. Idempotent. Changes already applied are durable.
        From a callback (the event thread) it returns without waiting for
        that thread, which ends once the callback returns."""
        self._shutdown()

    def _shutdown(self) -> None:
        self._core.stop()
        self._core.close_events()
        self._events.join()
        _unregister(self)

    def __del__(self) -> None:
        # A node dropped while running is stopped, not left to the exit.
        core = getattr(self, "_core", None)
        if core is not None and core.running:
            self._shutdown()

    def __enter__(self) -> "Node":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return bool(self._core.running)

    @property
    def node_id(self) -> str:
        return self._core.node_id

    @property
    def port(self) -> int:
        """The UDP port the node is bound to (0 when not running)."""
        return self._core.port

    @property
    def data_dir(self) -> str:
        return self._core.data_dir

    @property
    def warnings(self) -> List[str]:
        """The configuration's unknown keys ("quic.foo: unknown key, ignored")."""
        return list(self._core.warnings)

    # ---- peers ----

    def connect_peer(self, address: str, port: int, peer_id: str) -> None:
        """Adds a peer and connects to it (asynchronously: ``peer:connected``
        follows); failures are retried with backoff. Raises ExistsError when
        it is already a peer."""
        self._core.connect_peer(address, port, peer_id)

    def disconnect_peer(self, peer_id: str) -> None:
        """Closes the connection to the peer and forgets it (NotFoundError if none)."""
        self._core.disconnect_peer(peer_id)

    # ---- writes ----

    def sync_pattern(self, pattern: PatternLike, peer_ids: Optional[Sequence[str]] = None) -> ApplyResult:
        """Stores the pattern durably, then syncs it: to every peer, or only to
        ``peer_ids`` (who do not relay it). Returns once it is durable here;
        delivery is asynchronous. A pattern may be a dict or JSON text. Raises
        PatternError naming the field when it is not a valid pattern (nothing
        is stored)."""
        if isinstance(peer_ids, (str, bytes)):
            raise TypeError("peer_ids must be a list of peer ids, not one string")
        return self._core.sync_pattern(_pattern_arg(pattern), None if peer_ids is None else list(peer_ids))

    def sync_patterns(self, patterns: Iterable[PatternLike]) -> BatchResult:
        """Stores a batch and syncs it to every peer. Every pattern is checked
        before any is stored: one bad pattern raises PatternError naming it
        (``index``, and ``field`` such as ``[3].metadata.priority``) and
        nothing is stored. Returns how many had each outcome."""
        if not isinstance(patterns, (list, tuple)):
            patterns = list(patterns)
        if any(not isinstance(p, (dict, str, bytes)) for p in patterns):
            patterns = [_pattern_arg(p) for p in patterns]
        return self._core.sync_patterns(patterns)

    def delete(self, pattern_id: str) -> ApplyResult:
        """Deletes a record: a tombstone one version above it, synced to every
        peer. Raises NotFoundError when there is no such live record."""
        return self._core.delete(pattern_id)

    # ---- reads ----

    def get(self, pattern_id: str) -> Optional[Pattern]:
        """The live record, or None."""
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
        """Live records in change-log order, filtered: only this type, tag,
        agentId; only records changed after the change-log sequence ``since``
        (``get_state()["store"]["seq"]``); at most ``limit`` (0: all)."""
        return self._core.query(type=type, tag=tag, agent_id=agent_id, since=since, limit=limit)

    def cached_patterns(self) -> List[Pattern]:
        """Seed 000's getCachedPatterns(): every live record."""
        return self._core.query()

    def get_state(self) -> NodeState:
        """Seed 000's getState(): running, connections, stats, peers (a dict of
        peer id to state), and the store's count, sequence and digest."""
        return self._core.get_state()

    def sync_now(self) -> None:
        """Wakes every peer's sender now (normally driven by changes and syncInterval)."""
        self._core.sync_now()

    def reload_tls(self) -> None:
        """Re-reads the certificate, key and CA files: new connections use them."""
        self._core.reload_tls()

    # ---- events ----

    @overload
    def on(self, event: EventName) -> Callable[[_F], _F]: ...

    @overload
    def on(self, event: EventName, callback: _F) -> _F: ...

    def on(self, event: EventName, callback: Optional[_F] = None) -> Any:
        """Calls ``callback(payload)`` for every event named ``event``
        (seed 000's names: "pattern:received", "peer:connected", ...; payloads
        in the seed's shape plus "type"). Callbacks run on the node's event
        thread, one at a time, never on the library's loop; an exception in
        one is logged ("agentsync" logger) and the others go on. Usable as a
        decorator: ``@node.on("pattern:received")``."""
        if callback is None:
            def deco(fn: _F) -> _F:
                self._events.on(event, fn)
                return fn

            return deco
        self._events.on(event, callback)
        return callback

    def once(self, event: EventName, callback: Callable[[Any], Any]) -> None:
        """As on(), for the next such event only."""
        self._events.once(event, callback)

    def off(self, event: EventName, callback: Optional[Callable[[Any], Any]] = None) -> None:
        """Removes a callback (or every callback of the event)."""
        self._events.off(event, callback)

    def events(self, types: Optional[Iterable[EventName]] = None, *, maxsize: int = STREAM_MAXSIZE) -> EventStream:
        """``async for event in node.events(types=[...])``: events on the
        calling event loop, at most ``maxsize`` unread (then an
        ``events:overflow`` event says how many were dropped). Ends when the
        node stops. Call it from a coroutine."""
        return self._events.stream(types, maxsize)

    @property
    def callback_errors(self) -> int:
        """How many callbacks have raised."""
        return self._events.callback_errors

    def __repr__(self) -> str:
        return f"<agentsync.Node {self.node_id!r} {'running' if self.running else 'stopped'}>"


def _path(p: Optional[Union[str, "os.PathLike[str]"]]) -> Optional[str]:
    return None if p is None else os.fspath(p)
