# SPDX-License-Identifier: Apache-2.0
"""Helpers for the packaging and operations tests (tests/pkg/*.py): start
agentsyncd processes on 127.0.0.1 with configs of their own, talk to their
HTTP API, run the CLI. Every wait is bounded (it only stops a test that
would otherwise hang; nothing asserts on time). Daemons are stopped by PID."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

BIN = os.environ.get("AGS_BIN_DIR", os.path.join(os.getcwd(), "bin"))
SRC = os.environ.get("AGS_SOURCE_DIR", os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))

_started = []


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    stop_all()
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def workdir(name):
    d = tempfile.mkdtemp(prefix="ags-%s-" % name)
    return d


def run(args, **kw):
    """Runs a program; returns CompletedProcess with text output."""
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 300)
    return subprocess.run(args, **kw)


def cli(api, *args, **kw):
    return run([os.path.join(BIN, "agentsync"), "--api", api] + list(args), **kw)


def make_certs(d, nodes):
    r = run([os.path.join(BIN, "agentsync"), "certs", "init", "--dir", d, "--nodes",
             ",".join(nodes)])
    check(r.returncode == 0, "certs init: " + r.stderr)


class Daemon:
    """One agentsyncd with a config file of its own in `wd`/`name`."""

    def __init__(self, wd, name, certs, data=None, extra=None, program=None):
        self.name = name
        self.dir = os.path.join(wd, name)
        os.makedirs(self.dir, exist_ok=True)
        self.data = data or os.path.join(self.dir, "data")
        self.certs = certs
        self.extra = extra or {}
        self.program = program or os.path.join(BIN, "agentsyncd")
        self.proc = None
        self.api = None
        self.quic_port = None

    def config(self):
        q = {
            "enabled": True,
            "nodeId": self.name,
            "host": "127.0.0.1",
            "port": 0,
            "dataDir": self.data,
            "syncInterval": 200,
            "tls": {
                "cert": os.path.join(self.certs, self.name + ".pem"),
                "key": os.path.join(self.certs, self.name + "-key.pem"),
                "ca": os.path.join(self.certs, "ca.pem"),
                "rejectUnauthorized": True,
            },
            "api": {"listen": "127.0.0.1:0"},
        }
        q.update(self.extra)
        return {"quic": q}

    def start(self, args=()):
        cfg = os.path.join(self.dir, "config.json")
        with open(cfg, "w") as f:
            json.dump(self.config(), f)
        self.out = open(os.path.join(self.dir, "stdout"), "w+")
        self.err = open(os.path.join(self.dir, "stderr"), "w+")
        self.proc = subprocess.Popen([self.program, "--config", cfg] + list(args),
                                     stdout=self.out, stderr=self.err, cwd=self.dir)
        _started.append(self)
        for _ in range(600):
            self.out.seek(0)
            line = self.out.read()
            if "listening " in line:
                for w in line.split():
                    if w.startswith("api="):
                        self.api = w[4:]
                    if w.startswith("quic="):
                        self.quic_port = int(w.rsplit(":", 1)[1])
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        fail("%s did not start: %s" % (self.name, self.log()))

    def log(self):
        self.err.seek(0)
        return self.err.read()

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self in _started:
            _started.remove(self)
        return self.proc.returncode if self.proc else None

    def url(self, path):
        return "http://%s%s" % (self.api, path)

    def request(self, method, path, body=None, ctype="application/json"):
        """Returns (status, headers, body bytes)."""
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request(self.url(path), data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", ctype)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def get_json(self, path):
        st, _, b = self.request("GET", path)
        check(st == 200, "%s GET %s: %d %s" % (self.name, path, st, b[:200]))
        return json.loads(b)

    def state(self):
        return self.get_json("/v1/state")

    def add_peer(self, other):
        st, _, b = self.request("POST", "/v1/peers", {"id": other.name, "address": "127.0.0.1",
                                                      "port": other.quic_port})
        check(st == 201, "add peer %s to %s: %d %s" % (other.name, self.name, st, b))


def wait_for(what, pred, tries=1200, pause=0.05):
    """Polls pred() until it is true (bounded); fails the test naming `what`."""
    for _ in range(tries):
        v = pred()
        if v:
            return v
        time.sleep(pause)
    fail("timed out waiting for " + what)


def stop_all():
    for d in list(_started):
        try:
            d.stop(signal.SIGKILL)
        except Exception:
            pass


def pattern(i, prefix="p", agent="agent-1", **kw):
    p = {
        "id": "%s-%06d" % (prefix, i),
        "agentId": agent,
        "type": "test",
        "data": {"n": i, "text": "pattern %d of the packaging tests" % i},
        "metadata": {"source": "pkg-test", "tags": ["t%d" % (i % 3)], "priority": 5},
        "version": 1,
        "timestamp": 1700000000000 + i,
    }
    p.update(kw)
    return p


def cleanup(wd):
    stop_all()
    if os.environ.get("AGS_KEEP_TMP") != "1":
        shutil.rmtree(wd, ignore_errors=True)
