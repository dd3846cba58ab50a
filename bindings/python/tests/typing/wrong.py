# SPDX-License-Identifier: Apache-2.0
"""Wrong uses that mypy --strict must refuse (tests/test_types.py): exactly
the lines marked with "# E"."""

import agentsync
from agentsync.types import NodeState, Pattern

n = agentsync.Node({"port": 4433})
bad_pattern: Pattern = {"id": "x", "agentId": "a"}  # E: keys missing
n.connect_peer("127.0.0.1", "4433", "b")  # E: the port is an int
state: NodeState = n.get_state()
print(state["stats"]["totalSync"])  # E: no such key
agentsync.Node({"port": "4433"})  # E: the port is an int
n.query(kind="x")  # E: no such argument
hub = agentsync.FederationHub(endpoint="quic://h:1", cert="c", key="k", ca="a", timeout_ms="5")  # E
print(hub.sync()["pulledCount"])  # E: no such key
