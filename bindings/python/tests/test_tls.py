# SPDX-License-Identifier: Apache-2.0
"""A peer whose certificate another CA signed is refused; nothing reaches it."""

from __future__ import annotations

from conftest import Collector, pattern


def test_a_peer_from_a_foreign_ca_is_refused(make_node):
    a = make_node("a")
    x = make_node("x", ca_set="other")  # its own CA, which a does not trust (nor x a's)
    refused_a, err_x, recv_x = Collector(), Collector(), Collector()
    a.on("connection:refused", refused_a)
    a.on("peer:error", refused_a)
    x.on("peer:error", err_x)
    x.on("connection:refused", err_x)
    x.on("pattern:received", recv_x)
    connected = Collector()
    a.on("peer:connected", connected)
    x.on("peer:connected", connected)
    a.sync_pattern(pattern("secret"))
    x.connect_peer("127.0.0.1", a.port, "a")
    # Either side may be the one to say so first; at least one must, with a reason.
    err_x.wait_for(lambda e: e, "x told that a refused it (or that a's certificate is bad)")
    ev = err_x.events[0]
    assert "CA" in ev["error"] or "certificate" in ev["error"], ev
    assert connected.events == []
    st = x.get_state()
    assert st["peers"]["a"]["connected"] is False
    assert st["connections"] == 0 and a.get_state()["connections"] == 0
    assert x.get("secret") is None and recv_x.events == []


def test_a_peer_from_the_same_ca_is_accepted(make_node):
    # The control for the test above: same set-up, certificates from one CA.
    a, b = make_node("a"), make_node("b")
    connected = Collector()
    b.on("peer:connected", connected)
    b.connect_peer("127.0.0.1", a.port, "a")
    connected.wait_for(lambda e: e, "peer:connected")
