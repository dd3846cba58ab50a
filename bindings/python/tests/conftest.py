# SPDX-License-Identifier: Apache-2.0
"""Shared fixtures: certificates, nodes on 127.0.0.1, and an event collector.

The tests import the built package (PYTHONPATH=build/python, as ctest sets
it) or an installed one; never the source tree next to them, which has no
extension.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
_SRC = os.path.dirname(HERE)
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _SRC]

import agentsync  # noqa: E402

# Longest wait for anything a test expects to happen (bounded; not a speed check).
WAIT_S = 30.0


def pattern(pid: str, version: int = 1, **extra: Any) -> Dict[str, Any]:
    p: Dict[str, Any] = {
        "id": pid,
        "agentId": "test-generator",
        "type": "test_execution",
        "data": {"testCase": "UserLogin", "result": "passed", "n": version},
        "metadata": {"source": "test-generator", "tags": ["unit", "auth"], "priority": 1},
        "timestamp": 1761100000000 + version,
        "version": version,
    }
    p.update(extra)
    return p


class Collector:
    """Events from callbacks, with bounded waits."""

    def __init__(self) -> None:
        self.events: List[Dict[str, Any]] = []
        self._cv = threading.Condition()
        self.threads: set = set()

    def __call__(self, ev: Dict[str, Any]) -> None:
        with self._cv:
            self.events.append(ev)
            self.threads.add(threading.current_thread().name)
            self._cv.notify_all()

    def wait_for(self, pred: Callable[[List[Dict[str, Any]]], bool], what: str,
                 timeout: float = WAIT_S) -> List[Dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self._cv:
            while not pred(self.events):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out waiting for {what}; got {self.events[-5:]}")
                self._cv.wait(left)
            return list(self.events)

    def count(self, name: str) -> int:
        with self._cv:
            return sum(1 for e in self.events if e["type"] == name)

    def ids(self) -> List[str]:
        with self._cv:
            return [e["pattern"]["id"] for e in self.events if e["type"] == "pattern:received"]


@pytest.fixture(scope="session")
def certs(tmp_path_factory) -> str:
    """A CA with certificates for a, b, c; and another CA with one for x."""
    d = tmp_path_factory.mktemp("certs")
    agentsync.init_certs(d / "main", ["a", "b", "c"])
    agentsync.init_certs(d / "other", ["x"])
    return str(d)


def node_config(certs: str, node_id: str, data: str, ca_set: str = "main", **extra: Any) -> Dict[str, Any]:
    c = os.path.join(certs, ca_set)
    cfg: Dict[str, Any] = {
        "nodeId": node_id,
        "host": "127.0.0.1",
        "port": 0,
        "dataDir": os.path.join(data, node_id),
        "tls": {
            "cert": os.path.join(c, node_id + ".pem"),
            "key": os.path.join(c, node_id + "-key.pem"),
            "ca": os.path.join(c, "ca.pem"),
        },
        "retry": {"baseDelay": 50, "maxDelay": 500},
        "syncInterval": 200,
    }
    cfg.update(extra)
    return cfg


@pytest.fixture
def make_node(certs, tmp_path):
    """make_node("a", **config) -> a started agentsync.Node, stopped at teardown."""
    made: List[agentsync.Node] = []

    def make(node_id: str, start: bool = True, ca_set: str = "main", **extra: Any) -> agentsync.Node:
        n = agentsync.Node(node_config(certs, node_id, str(tmp_path), ca_set, **extra))
        made.append(n)
        if start:
            n.start()
        return n

    yield make
    for n in made:
        n.stop()


def connect(a: agentsync.Node, b: agentsync.Node, ca: Optional[Collector] = None) -> None:
    """b dials a; returns once both sides said peer:connected."""
    got_a, got_b = threading.Event(), threading.Event()
    fa = lambda ev: ev["peerId"] == b.node_id and got_a.set()  # noqa: E731
    fb = lambda ev: ev["peerId"] == a.node_id and got_b.set()  # noqa: E731
    a.on("peer:connected", fa)
    b.on("peer:connected", fb)
    try:
        b.connect_peer("127.0.0.1", a.port, a.node_id)
        assert got_a.wait(WAIT_S) and got_b.wait(WAIT_S), "peers did not connect"
    finally:
        a.off("peer:connected", fa)
        b.off("peer:connected", fb)


def bin_path(name: str) -> str:
    """A program of the build (AGS_BIN_DIR, as ctest sets it)."""
    d = os.environ.get("AGS_BIN_DIR") or os.path.join(_SRC, "..", "..", "build", "bin")
    p = os.path.join(d, name)
    if not os.access(p, os.X_OK):
        pytest.fail(f"{p} not found: build the project (make build) or set AGS_BIN_DIR")
    return p


def task_count() -> int:
    """Threads of this process, as the kernel counts them (C threads included)."""
    return len(os.listdir("/proc/self/task"))


def settled_task_count(want: int, timeout: float = 5.0) -> int:
    """task_count(), once it is `want` or after `timeout`: a Python thread that
    join() has waited for still takes a moment to leave the kernel's list
    (join returns when its Python state is gone, before the OS thread ends).
    A thread left behind stays, so the count then differs."""
    deadline = time.monotonic() + timeout
    n = task_count()
    while n != want and time.monotonic() < deadline:
        time.sleep(0.01)
        n = task_count()
    return n
