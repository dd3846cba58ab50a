# SPDX-License-Identifier: Apache-2.0
"""agentsyncd processes, one per node namespace, driven as a black box.

Each daemon is started as
    setpriv --pdeathsig KILL -- ip netns exec NS agentsyncd --config FILE
(setpriv and ip exec in turn, so the Popen pid is the daemon's pid, and the
daemon gets SIGKILL should the orchestrator die without cleaning up). Start
daemons from the main thread only: the parent-death signal fires when the
thread that started the child ends.

Its configuration is the documented file format (ARCHITECTURE.md,
"Configuration file"); its stderr log is appended to LOG, its stdout (the
"listening ..." line) to OUT.
"""

import json
import os
import signal
import subprocess
import time

from . import api as apimod

QUIC_PORT = 4433
API_PORT = 7433


class ClusterError(Exception):
    pass


def tail(path, n=30):
    try:
        with open(path, "rb") as f:
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-n:])


class Node:
    def __init__(self, cluster, i):
        self.cluster, self.i = cluster, i
        self.name = "n%d" % i
        net = cluster.net
        self.ns = net.ns(i)
        self.data_ip, self.ctl_ip = net.data_ip(i), net.ctl_ip(i)
        self.dir = os.path.join(cluster.workdir, self.name)
        self.data_dir = os.path.join(self.dir, "data")
        self.config = os.path.join(self.dir, "config.json")
        self.log = os.path.join(self.dir, "agentsyncd.log")
        self.out = os.path.join(self.dir, "stdout")
        self.proc = None
        self.state = "new"  # new, starting, up, stopped, killed, exited
        self.starts = 0
        self.listen_lines = 0
        self.exits = []  # (returncode, expected) of every process that ended
        os.makedirs(self.dir, exist_ok=True)

    @property
    def store_path(self):
        return os.path.join(self.data_dir, "store.db")

    def api(self, timeout=2.0):
        return apimod.Api(self.ctl_ip, API_PORT, timeout)

    def write_config(self, peers, extra=None):
        """peers: list of Node to dial. extra: dict merged into "quic"."""
        certs = self.cluster.certs
        q = {
            "nodeId": self.name,
            "host": self.data_ip,
            "port": QUIC_PORT,
            "dataDir": self.data_dir,
            "api": {"listen": "%s:%d" % (self.ctl_ip, API_PORT)},
            "peers": [{"id": p.name, "address": p.data_ip, "port": QUIC_PORT} for p in peers],
            "retry": {"maxAttempts": 1000000, "baseDelay": 100, "maxDelay": 1000},
            "idleTimeout": self.cluster.idle_timeout_ms,
            "keepAlive": max(100, self.cluster.idle_timeout_ms // 3),
            "tls": {
                "cert": os.path.join(certs, self.name + ".pem"),
                "key": os.path.join(certs, self.name + "-key.pem"),
                "ca": os.path.join(certs, "ca.pem"),
                "rejectUnauthorized": True,
            },
            "log": {"level": "info"},
        }
        if extra:
            q.update(extra)
        with open(self.config, "w") as f:
            json.dump({"quic": q}, f, indent=1)

    def start(self):
        """Starts the daemon; returns at once (see wait_listening)."""
        if self.proc is not None and self.proc.poll() is None:
            raise ClusterError("%s is already running" % self.name)
        self._reap()
        argv = ["setpriv", "--pdeathsig", "KILL", "--", "ip", "netns", "exec", self.ns,
                self.cluster.agentsyncd, "--config", self.config]
        with open(self.log, "ab") as err, open(self.out, "ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        self.starts += 1
        self.state = "starting"

    def wait_listening(self, timeout=30.0):
        """Waits for this start's "listening" line on stdout; raises if the daemon died."""
        deadline = time.monotonic() + timeout
        while True:
            n = self._count_listening()
            if n > self.listen_lines:
                self.listen_lines = n
                self.state = "up"
                return
            if self.proc.poll() is not None:
                self._reap()
                raise ClusterError("%s exited with %s while starting:\n%s" %
                                   (self.name, self.exits[-1][0], tail(self.log)))
            if time.monotonic() > deadline:
                raise ClusterError("%s did not listen within %.0f s:\n%s" %
                                   (self.name, timeout, tail(self.log)))
            time.sleep(0.02)

    def _count_listening(self):
        try:
            with open(self.out, "rb") as f:
                return f.read().count(b"listening ")
        except OSError:
            return 0

    def _reap(self, expected=False):
        if self.proc is not None and self.proc.poll() is not None:
            self.exits.append((self.proc.returncode, expected))
            self.proc = None

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if not self.running:
            rc = self.proc.returncode if self.proc is not None else None
            raise ClusterError("%s exited unexpectedly (status %s):\n%s" %
                               (self.name, rc, tail(self.log)))
        os.kill(self.proc.pid, sig)

    def kill9(self):
        self.signal(signal.SIGKILL)
        self.proc.wait()
        self._reap(expected=True)
        self.state = "killed"

    def sigstop(self):
        self.signal(signal.SIGSTOP)
        self.state = "stopped"

    def sigcont(self):
        self.signal(signal.SIGCONT)
        self.state = "up"

    def terminate(self, timeout=10.0):
        """SIGTERM (after SIGCONT), SIGKILL if it does not exit in time. Never raises."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGCONT)
                os.kill(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            except ProcessLookupError:
                pass
        self._reap(expected=True)
        self.state = "exited"

    def unexpected_exits(self):
        """Processes of this node that ended without being killed or stopped by the test."""
        self._reap()
        return [rc for rc, expected in self.exits if not expected]


class Cluster:
    """The daemons of a run and their certificates. stop() in a finally."""

    def __init__(self, net, workdir, bindir, idle_timeout_ms=3000):
        self.net, self.workdir, self.bindir = net, workdir, bindir
        self.idle_timeout_ms = idle_timeout_ms
        self.agentsyncd = os.path.join(bindir, "agentsyncd")
        self.agentsync = os.path.join(bindir, "agentsync")
        for prog in (self.agentsyncd, self.agentsync):
            if not os.access(prog, os.X_OK):
                raise ClusterError("%s not found (build first: make build)" % prog)
        self.certs = os.path.join(workdir, "certs")
        self.nodes = [Node(self, i) for i in range(net.n)]
        names = ",".join(n.name for n in self.nodes)
        p = subprocess.run([self.agentsync, "certs", "init", "--dir", self.certs, "--nodes",
                            names], capture_output=True, text=True)
        if p.returncode != 0:
            raise ClusterError("agentsync certs init: %s" % p.stderr.strip())

    def configure(self, dials, extra=None):
        """dials: {i: [j, ...]}: node i dials node j."""
        for n in self.nodes:
            n.write_config([self.nodes[j] for j in dials.get(n.i, [])], extra)

    def start_all(self, timeout=30.0):
        for n in self.nodes:
            n.start()
        for n in self.nodes:
            n.wait_listening(timeout)

    def stop(self):
        for n in self.nodes:
            n.terminate()
