# SPDX-License-Identifier: Apache-2.0
"""Bad patterns and bad configurations: clear errors that name the field; nothing applied."""

from __future__ import annotations

import json
import math
import os

import pytest
from conftest import node_config, pattern

import agentsync


def test_bad_patterns_name_the_field(make_node):
    a = make_node("a")
    cases = [
        ({k: v for k, v in pattern("x").items() if k != "id"}, "id", "is required"),
        (pattern("x", metadata={"source": "s", "tags": ["t"], "priority": 11}),
         "metadata.priority", "from 1 to 10"),
        (pattern("x", version=0), "version", None),
        (pattern("x", metadata={"source": "s", "tags": ["t", 3]}), "metadata.tags[1]", "string"),
        (pattern("x", data={"when": object()}), "data.when", "not JSON"),
        (pattern("x", data={"xs": [1, {"f": math.nan}]}), "data.xs[1].f", "finite"),
        (pattern("x", data={1: "int key"}), "data", "keys must be strings"),
        (pattern("x", data={"s": "\ud800"}), "data.s", "UTF-8"),
    ]
    for p, field, words in cases:
        with pytest.raises(agentsync.PatternError) as ei:
            a.sync_pattern(p)
        e = ei.value
        assert e.field == field, (field, e.field, str(e))
        assert e.code in ("AGS_ERR_PATTERN", "AGS_ERR_JSON")
        assert isinstance(e, agentsync.Error) and isinstance(e, ValueError)
        if words:
            assert words in e.message, (words, e.message)
        assert str(e).startswith(field + ": ")
    assert a.get_state()["store"]["patterns"] == 0


def test_malformed_json_text_gives_the_byte_offset(make_node):
    a = make_node("a")
    with pytest.raises(agentsync.PatternError) as ei:
        a.sync_pattern('{"id": "x", "agentId": ')
    assert ei.value.code == "AGS_ERR_JSON"
    assert ei.value.offset is not None and ei.value.offset > 0
    with pytest.raises(agentsync.PatternError, match="must be a dict"):
        a.sync_pattern(["not", "a", "pattern"])


def test_a_bad_pattern_in_a_batch_names_its_index_and_nothing_is_stored(make_node):
    a = make_node("a")
    batch = [pattern(f"b-{i}") for i in range(3000)]
    batch[2500]["metadata"]["priority"] = 0
    with pytest.raises(agentsync.PatternError) as ei:
        a.sync_patterns(batch)
    assert ei.value.index == 2500
    assert ei.value.field == "[2500].metadata.priority"
    # An error in the conversion (not the parse) is named the same way.
    batch[2500]["metadata"]["priority"] = 1
    batch[1800]["data"] = {"x": {1, 2}}
    with pytest.raises(agentsync.PatternError) as ei:
        a.sync_patterns(batch)
    assert (ei.value.index, ei.value.field) == (1800, "[1800].data.x")
    # The first of several bad patterns is the one named.
    batch[1800]["data"] = {}
    batch[2999]["version"] = -1
    batch[700]["id"] = ""
    with pytest.raises(agentsync.PatternError) as ei:
        a.sync_patterns(batch)
    assert (ei.value.index, ei.value.field) == (700, "[700].id")
    # A pattern the parser refuses comes before a later one the conversion refuses.
    batch[2999]["version"] = 1
    batch[2500]["data"] = {"when": object()}
    with pytest.raises(agentsync.PatternError) as ei:
        a.sync_patterns(batch)
    assert (ei.value.index, ei.value.field) == (700, "[700].id")
    assert a.get_state()["store"]["patterns"] == 0
    assert a.cached_patterns() == []
    with pytest.raises(TypeError):
        a.sync_patterns(42)


def test_bad_configs_name_the_json_path(certs, tmp_path):
    good = node_config(certs, "a", str(tmp_path))
    cases = [
        (dict(good, port=70000), "quic.port", "from 0 to 65535"),
        (dict(good, peers=[{"id": "b", "address": "127.0.0.1", "port": 0}]), "quic.peers[0].port", None),
        (dict(good, peers=[{"id": "b", "address": "127.0.0.1"}]), "quic.peers[0].port", "required"),
        (dict(good, retry={"baseDelay": 100, "maxDelay": 10}), "quic.retry.maxDelay", "baseDelay"),
        (dict(good, tls=dict(good["tls"], cert=str(tmp_path / "missing.pem"))), "quic.tls.cert", None),
        (dict(good, syncInterval="fast"), "quic.syncInterval", None),
    ]
    for cfg, field, words in cases:
        with pytest.raises(agentsync.ConfigError) as ei:
            agentsync.Node(cfg)
        assert ei.value.field == field, (field, ei.value.field, str(ei.value))
        assert ei.value.code == "AGS_ERR_CONFIG"
        if words:
            assert words in ei.value.message
    with pytest.raises(agentsync.ConfigError) as ei:
        agentsync.Node({k: v for k, v in good.items() if k != "nodeId"})
    assert ei.value.field == "quic.nodeId"
    with pytest.raises(agentsync.ConfigError, match="not JSON"):
        agentsync.Node(dict(good, port=object()))


def test_unknown_keys_warn_and_the_whole_file_form_is_accepted(certs, tmp_path):
    cfg = node_config(certs, "a", str(tmp_path), colour="blue")
    with pytest.warns(agentsync.ConfigWarning, match="quic.colour: unknown key"):
        n = agentsync.Node({"quic": cfg})
    assert n.warnings == ["quic.colour: unknown key, ignored"]
    assert n.node_id == "a" and not n.running


def test_from_file_with_node_id_and_errors_naming_the_file(certs, tmp_path):
    cfg = node_config(certs, "b", str(tmp_path))
    del cfg["nodeId"]
    path = tmp_path / "quic.json"
    path.write_text(json.dumps({"quic": cfg}))
    with agentsync.Node.from_file(path, node_id="b") as n:
        assert n.node_id == "b" and n.running and n.port > 0
    # The seed's own file: its nodeId is missing, its TLS files do not exist here.
    seed = os.path.join(os.path.dirname(__file__), "..", "..", "..", "tests", "data", "seed-quic.json")
    with pytest.raises(agentsync.ConfigError) as ei:
        agentsync.Node.from_file(seed, node_id="agent-0")
    assert ei.value.field == "quic.tls.cert" and ei.value.file == seed
    assert str(ei.value).startswith(seed + ": quic.tls.cert: ")
    bad = tmp_path / "bad.json"
    bad.write_text('{"quic": {"port": 1,,}}')
    with pytest.raises(agentsync.ConfigError) as ei:
        agentsync.Node.from_file(bad, node_id="b")
    assert ei.value.code == "AGS_ERR_JSON" and ei.value.offset is not None
    with pytest.raises(agentsync.ConfigError) as ei:
        agentsync.Node.from_file(tmp_path / "none.json", node_id="b")
    assert ei.value.code in ("AGS_ERR_NOT_FOUND", "AGS_ERR_IO")


def test_calls_on_a_stopped_node_raise_state_error(make_node):
    a = make_node("a", start=False)
    for call in (lambda: a.sync_pattern(pattern("s")), lambda: a.get("s"), lambda: a.query(),
                 lambda: a.connect_peer("127.0.0.1", 1, "b"), lambda: a.delete("s")):
        with pytest.raises(agentsync.StateError, match="not started"):
            call()
    a.start()
    with pytest.raises(agentsync.StateError, match="already started"):
        a.start()
    a.connect_peer("127.0.0.1", 9, "b")
    with pytest.raises(agentsync.ExistsError) as ei:
        a.connect_peer("127.0.0.1", 9, "b")
    assert ei.value.field == "peer_id"
    with pytest.raises(agentsync.NotFoundError):
        a.disconnect_peer("nobody")
    with pytest.raises(agentsync.ArgumentError, match="65535"):
        a.connect_peer("127.0.0.1", 70000, "c")
