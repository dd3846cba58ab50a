# SPDX-License-Identifier: Apache-2.0
"""FederationHub (seed 004) against a real `agentsyncd --hub`, with real JWTs."""

from __future__ import annotations

import asyncio
import json
import os
import selectors
import subprocess
import threading
import time

import pytest
from conftest import WAIT_S, Collector, bin_path, pattern, settled_task_count, task_count

import agentsync
import agentsync.aio

SECRET = "test_hub.py: a shared secret of more than 32 bytes"


class Hub:
    """agentsyncd --hub on 127.0.0.1, started and stopped by the test."""

    def __init__(self, d: str) -> None:
        self.dir = d
        self.certs = os.path.join(d, "certs")
        agentsync.init_certs(self.certs, ["hub", "agent"])
        self.secret = os.path.join(d, "secret")
        with open(self.secret, "w") as f:
            f.write(SECRET + "\n")
        cfg = {"quic": {
            "nodeId": "hub", "host": "127.0.0.1", "port": 0, "dataDir": os.path.join(d, "hub-data"),
            "api": {"listen": "127.0.0.1:0"},
            "tls": {"cert": f"{self.certs}/hub.pem", "key": f"{self.certs}/hub-key.pem",
                    "ca": f"{self.certs}/ca.pem"},
            "hub": {"algorithms": ["HS256"], "hs256SecretFile": self.secret},
        }}
        path = os.path.join(d, "hub.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        self.err = open(os.path.join(d, "hub.log"), "w")
        self.proc = subprocess.Popen([bin_path("agentsyncd"), "--config", path, "--hub"],
                                     stdout=subprocess.PIPE, stderr=self.err, text=True)
        line = self._readline(WAIT_S)
        if not line.startswith("listening "):
            self.stop()
            pytest.fail(f"agentsyncd --hub did not start: {line!r}, see {self.err.name}")
        fields = dict(kv.split("=", 1) for kv in line.split()[1:])
        self.endpoint = "quic://" + fields["quic"]

    def _readline(self, timeout: float) -> str:
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        ready = sel.select(timeout)
        sel.close()
        return self.proc.stdout.readline() if ready else ""

    def token(self, sub: str, tenant: str, secret_file: str | None = None) -> str:
        out = subprocess.run([bin_path("agentsync"), "token", "--sub", sub, "--tenant", tenant,
                              "--secret-file", secret_file or self.secret],
                             check=True, capture_output=True, text=True, timeout=WAIT_S)
        tok = out.stdout.strip()
        assert tok.count(".") == 2, tok  # a compact JWS
        return tok

    def agent(self, name: str, token: str, **kw) -> agentsync.FederationHub:
        args = dict(endpoint=self.endpoint, token=token, cert=f"{self.certs}/agent.pem",
                    key=f"{self.certs}/agent-key.pem", ca=f"{self.certs}/ca.pem",
                    data_dir=os.path.join(self.dir, "agent-" + name), timeout_ms=20000)
        args.update(kw)
        return agentsync.FederationHub(**args)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(WAIT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self.err.close()


@pytest.fixture
def hub(tmp_path):
    h = Hub(str(tmp_path))
    yield h
    h.stop()


def test_two_agents_sync_through_the_hub(hub):
    before = task_count()
    t1, t2 = hub.token("agent-1", "acme"), hub.token("agent-2", "acme")
    with hub.agent("1", t1, agent_id="agent-1", tenant_id="acme") as h1, hub.agent("2", t2) as h2:
        assert h1.agent_id == "agent-1" and h2.agent_id == "agent-2"
        assert not h1.is_connected()
        h1.put(pattern("from-1", agentId="agent-1"))
        h1.connect()
        assert h1.is_connected()
        r1 = h1.sync()
        assert r1["pushed"] == 1 and r1["pulled"] == 0 and r1["durationMs"] >= 0
        live = Collector()
        h2.on("pattern:received", live)
        h2.connect()
        r2 = h2.sync()
        assert r2["pulled"] == 1
        assert h2.get("from-1")["agentId"] == "agent-1"
        assert [p["id"] for p in h2.cached_patterns()] == ["from-1"]
        # Connected after a sync: changes of the other agent come live.
        h1.put(pattern("live-1", agentId="agent-1"))
        live.wait_for(lambda e: "live-1" in live.ids(), "live-1 at agent-2")
        assert live.events[-1]["sourceId"]
        st = h1.get_sync_stats()
        assert st["lastSyncTime"] > 0 and st["vectorClock"].get("agent-1", 0) >= 1
        assert h2.store_state()["patterns"] == 2
        assert h2.store_state()["digest"] == h1.store_state()["digest"]
        h2.disconnect()
        assert not h2.is_connected()
    assert settled_task_count(before) == before, "a closed FederationHub left threads behind"


def test_a_token_the_hub_did_not_sign_is_refused(hub, tmp_path):
    other = tmp_path / "other-secret"
    other.write_text("another secret, long enough, that the hub does not know\n")
    with hub.agent("bad", hub.token("agent-9", "acme", str(other))) as h:
        with pytest.raises(agentsync.AuthError) as ei:
            h.connect()
        assert ei.value.code == "AGS_ERR_AUTH" and ei.value.message
        assert not h.is_connected()


def test_tenants_are_isolated_and_a_second_run_resumes(hub):
    with hub.agent("a", hub.token("agent-a", "acme")) as a:
        a.put(pattern("acme-only"))
        a.connect()
        a.sync()
        assert a.get_sync_stats()["resumed"] is False
    with hub.agent("z", hub.token("agent-z", "zeta")) as z:
        z.connect()
        assert z.sync()["pulled"] == 0 and z.get("acme-only") is None
    # The same agent, a new object on the same data directory: the TLS session resumes.
    with hub.agent("a", hub.token("agent-a", "acme")) as a:
        a.connect()
        assert a.get_sync_stats()["resumed"] is True
        assert a.sync()["pulled"] == 0 and a.get("acme-only") is not None


def test_claims_that_do_not_match_name_the_argument(hub):
    with pytest.raises(agentsync.ConfigError) as ei:
        hub.agent("m", hub.token("agent-m", "acme"), agent_id="someone-else")
    assert ei.value.field == "agent_id" and "sub" in ei.value.message
    with pytest.raises(agentsync.ConfigError) as ei:
        hub.agent("m", hub.token("agent-m", "acme"), tenant_id="zeta")
    assert ei.value.field == "tenant_id"
    with pytest.raises(agentsync.ConfigError) as ei:
        hub.agent("m", "not-a-jwt")
    assert ei.value.field == "token"
    with pytest.raises(agentsync.ConfigError) as ei:
        hub.agent("m", hub.token("agent-m", "acme"), enable_mtls=False)
    assert ei.value.field == "enable_mtls"


def test_token_file_and_asyncio(hub, tmp_path):
    tf = tmp_path / "agent.jwt"
    tf.write_text(hub.token("agent-f", "acme") + "\n")

    async def main():
        async with agentsync.aio.FederationHub(
                endpoint=hub.endpoint, token_file=tf, cert=f"{hub.certs}/agent.pem",
                key=f"{hub.certs}/agent-key.pem", ca=f"{hub.certs}/ca.pem",
                data_dir=str(tmp_path / "aio-agent")) as h:
            await h.put(pattern("aio-1"))
            await h.connect()
            r = await h.sync()
            assert r["pushed"] == 1
            assert h.is_connected()
            await h.disconnect()
            return await h.store_state()

    st = asyncio.run(asyncio.wait_for(main(), WAIT_S))
    assert st["patterns"] == 1
