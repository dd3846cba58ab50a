# SPDX-License-Identifier: Apache-2.0
"""Events: callbacks on a thread the package owns, and ``async for`` streams.

The library calls back on its own threads; the extension copies each event
into a bounded queue there (the library never waits for Python). One
dispatcher thread per node or agent takes events from that queue, a batch at
a time, runs the callbacks registered for them and hands each asyncio
stream its share with ``loop.call_soon_threadsafe``. A queue that overflows,
the extension's or a stream's, says so with an ``events:overflow`` event
``{"type": "events:overflow", "dropped": n}`` at the place of the gap.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
from typing import Any, Callable, Dict, Iterable, List, Optional, Union

from . import _agentsync

__all__ = ["EventStream"]

OVERFLOW = "events:overflow"

# Every name an event can have (the library's, and the overflow marker).
EVENT_NAMES = frozenset(_agentsync.EVENT_TYPES) | {OVERFLOW}

# Library log levels (node.h, AGS_LOG_*) as logging's.
_LOG_LEVELS = {0: logging.ERROR, 1: logging.WARNING, 2: logging.INFO, 3: logging.DEBUG}

_log = logging.getLogger("agentsync")
# The library's own log lines go where the program sends its logging, and
# nowhere otherwise; errors of callbacks (the "agentsync" logger) are shown
# on stderr by logging's last resort when the program configured nothing.
for _name in ("agentsync.node", "agentsync.agent"):
    logging.getLogger(_name).addHandler(logging.NullHandler())

# Default bound of a stream's queue, in events.
STREAM_MAXSIZE = 10000

# Events the dispatcher takes (and hands to each stream) at a time.
_BATCH = 64

# Events a stream returns in a row without suspending before it lets the
# loop run other callbacks once (a long backlog must not hold the loop).
_YIELD_EVERY = 64


def _check_name(name: str) -> None:
    if name not in EVENT_NAMES:
        raise ValueError(
            f"unknown event {name!r}: one of {', '.join(sorted(EVENT_NAMES))}"
        )


class EventStream:
    """An asynchronous iterator of events (``async for ev in node.events()``).

    Made by ``events()`` on a running event loop; the events come on that
    loop. It holds at most ``maxsize`` events the program has not read yet;
    past that, events are dropped and an ``events:overflow`` event with the
    number dropped takes their place, so a gap is never silent. It ends when
    the node stops (or the hub is closed), or when closed with ``close()``
    or ``async with``.
    """

    def __init__(self, hub: "Events", types: Optional[Iterable[str]], maxsize: int) -> None:
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "events() is for asyncio programs: call it from a coroutine "
                "(use on() for callbacks)"
            ) from None
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self.types = frozenset(types) if types is not None else None
        if self.types is not None:
            for t in self.types:
                _check_name(t)
        self.maxsize = maxsize
        self._hub = hub
        self._buf: collections.deque[Dict[str, Any]] = collections.deque()
        self._dropped = 0
        self._waiter: Optional[asyncio.Future[None]] = None
        self._ended = False
        self._streak = 0  # events returned since the last suspension

    def wants(self, name: str) -> bool:
        return self.types is None or name in self.types or name == OVERFLOW

    # ---- the loop's side ----

    def __aiter__(self) -> "EventStream":
        return self

    async def __anext__(self) -> Dict[str, Any]:
        self._streak += 1
        if self._streak >= _YIELD_EVERY:
            self._streak = 0
            await asyncio.sleep(0)
        while True:
            if self._buf:
                return self._buf.popleft()
            if self._dropped:
                return self._overflow()
            if self._ended:
                raise StopAsyncIteration
            self._waiter = self._loop.create_future()
            self._streak = 0
            try:
                await self._waiter
            finally:
                self._waiter = None

    def _overflow(self) -> Dict[str, Any]:
        ev = {"type": OVERFLOW, "dropped": self._dropped}
        self._dropped = 0
        return ev

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _push(self, events: List[Dict[str, Any]]) -> None:
        # Runs on the loop (call_soon_threadsafe from the dispatcher).
        if self._ended:
            return
        for ev in events:
            if len(self._buf) >= self.maxsize:
                self._dropped += 1
                continue
            if self._dropped:
                self._buf.append(self._overflow())
            self._buf.append(ev)
        self._wake()

    def _end(self) -> None:
        self._ended = True
        self._wake()

    def close(self) -> None:
        """Stops the stream: it takes no more events and ends once drained."""
        self._hub.remove_stream(self)
        self._ended = True
        self._wake()

    async def aclose(self) -> None:
        self.close()

    async def __aenter__(self) -> "EventStream":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()

    # ---- the dispatcher's side ----

    def _send(self, events: List[Dict[str, Any]]) -> bool:
        """Hands events to the loop; False once the loop is closed."""
        try:
            self._loop.call_soon_threadsafe(self._push, events)
            return True
        except RuntimeError:
            return False

    def _send_end(self) -> None:
        try:
            self._loop.call_soon_threadsafe(self._end)
        except RuntimeError:
            pass


class Events:
    """The callbacks and streams of one node or agent, and its dispatcher thread."""

    def __init__(self, core: Union[_agentsync._Node, _agentsync._Agent], name: str,
                 logger_name: str) -> None:
        self._core = core
        self._name = name
        self._liblog = logging.getLogger(logger_name)
        self._lock = threading.Lock()
        self._callbacks: Dict[str, List[Callable[[Any], Any]]] = {}
        self._streams: List[EventStream] = []
        self._thread: Optional[threading.Thread] = None
        self.callback_errors = 0
        self._update_mask()

    # ---- subscriptions ----

    def on(self, name: str, callback: Callable[[Any], Any]) -> None:
        _check_name(name)
        if not callable(callback):
            raise TypeError("callback must be callable")
        with self._lock:
            self._callbacks.setdefault(name, []).append(callback)
        self._update_mask()

    def off(self, name: str, callback: Optional[Callable[[Any], Any]] = None) -> None:
        _check_name(name)
        with self._lock:
            cbs = self._callbacks.get(name, [])
            if callback is None:
                cbs.clear()
            elif callback in cbs:
                cbs.remove(callback)
            else:
                for cb in cbs:
                    if getattr(cb, "_agentsync_once", None) is callback:
                        cbs.remove(cb)
                        break
        self._update_mask()

    def once(self, name: str, callback: Callable[[Any], Any]) -> None:
        def wrapper(ev: Dict[str, Any]) -> Any:
            self.off(name, wrapper)
            return callback(ev)

        wrapper._agentsync_once = callback  # type: ignore[attr-defined]
        self.on(name, wrapper)

    def stream(self, types: Optional[Iterable[str]], maxsize: int) -> EventStream:
        s = EventStream(self, types, maxsize)
        with self._lock:
            self._streams.append(s)
        self._update_mask()
        return s

    def remove_stream(self, s: EventStream) -> None:
        with self._lock:
            if s in self._streams:
                self._streams.remove(s)
        self._update_mask()

    def _update_mask(self) -> None:
        """Tells the extension which events to queue: only those someone wants."""
        types = _agentsync.EVENT_TYPES
        mask = _agentsync.MASK_LOG
        with self._lock:
            for name, cbs in self._callbacks.items():
                if cbs and name in types:
                    mask |= 1 << types[name]
            for s in self._streams:
                for name, t in types.items():
                    if s.types is None or name in s.types:
                        mask |= 1 << t
        self._core.set_event_mask(mask)

    # ---- the dispatcher thread ----

    def start(self) -> None:
        """Starts a dispatcher (the caller has joined the one of a previous run)."""
        t = threading.Thread(target=self._run, name=f"agentsync-events-{self._name}", daemon=True)
        with self._lock:
            self._thread = t
        t.start()

    def join(self) -> None:
        """Waits for the dispatcher to deliver the last events and end (the
        queue must be closed first). A no-op on the dispatcher itself."""
        with self._lock:
            t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join()
            with self._lock:
                if self._thread is t:
                    self._thread = None

    def _run(self) -> None:
        core = self._core
        try:
            while True:
                batch = core.next_events(_BATCH)
                if batch is None:
                    break
                self._deliver(batch)
        finally:
            with self._lock:
                streams = list(self._streams)
                self._streams.clear()
            for s in streams:
                s._send_end()
            self._update_mask()

    def _deliver(self, batch: List[Dict[str, Any]]) -> None:
        with self._lock:
            callbacks = {k: list(v) for k, v in self._callbacks.items() if v}
            streams = list(self._streams)
        events = []
        for ev in batch:
            name = ev["type"]
            if name == "log":
                self._liblog.log(_LOG_LEVELS.get(ev["level"], logging.INFO), "%s", ev["message"])
                continue
            events.append(ev)
            cbs = callbacks.get(name)
            if not cbs:
                if name == OVERFLOW:
                    _log.warning(
                        "%s: %d events were dropped (the event queue was full); "
                        "listen to 'events:overflow' to handle it",
                        self._name,
                        ev["dropped"],
                    )
                continue
            for cb in cbs:
                try:
                    cb(ev)
                except Exception:
                    # Reported, never fatal: the next callbacks and events go on.
                    self.callback_errors += 1
                    _log.exception("%s: a %r callback raised", self._name, name)
        for s in streams:
            mine = [ev for ev in events if s.wants(ev["type"])]
            if mine and not s._send(mine):
                self.remove_stream(s)
