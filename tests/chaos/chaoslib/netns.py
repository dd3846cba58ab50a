# SPDX-License-Identifier: Apache-2.0
"""The test's own network: namespaces, veth pairs, two bridges, nftables and tc.

Layout (every name below lives in a namespace this module made; nothing is
created or changed in the namespace the test was started in):

    PREFIX-br     the data bridge "br0"; node i's data veth "p<i>" is a port
    PREFIX-ctl    the control bridge "cbr" (10.78.0.1/24); the orchestrator's
                  threads enter this namespace to reach every node's HTTP API
    PREFIX-n<i>   node i: "d0" 10.77.0.(10+i)/24 (QUIC, where faults go) and
                  "c0" 10.78.0.(10+i)/24 (its HTTP API, never faulted)

Faults act on node i's data link only: an nftables table "inet chaos" in its
namespace drops what comes from blocked peer addresses (partitions, one way
or both: node i blocking j and j blocking i) and, without netem, a share of
its packets (loss); tc puts netem (loss, delay, rate) or, without netem, tbf
(rate) on both ends of the data veth, so both directions are shaped.
"""

import ctypes
import os
import re
import shutil
import subprocess

CLONE_NEWNET = 0x40000000
DATA_NET = "10.77.0"
CTL_NET = "10.78.0"
NAME_RE = re.compile(r"^agsc(\d+)-")

_libc = ctypes.CDLL(None, use_errno=True)


class NetError(Exception):
    pass


def run(*args, input=None, check=True):
    """Runs a command, returns its stdout; raises NetError with its stderr."""
    p = subprocess.run(list(args), input=input, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise NetError("%s: exit %d: %s" % (" ".join(args), p.returncode, p.stderr.strip()))
    return p.stdout


def _setns(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise NetError("setns(%s): %s" % (path, os.strerror(e)))
    finally:
        os.close(fd)


def unavailable_reason():
    """Why namespaces cannot be made here (a sentence), or None when they can."""
    if os.geteuid() != 0:
        return "not running as root (ip netns needs CAP_SYS_ADMIN and CAP_NET_ADMIN)"
    for tool in ("ip", "nft", "tc", "setpriv"):
        if not shutil.which(tool) and not os.path.exists("/usr/sbin/" + tool):
            return "%s is not installed (scripts/install-deps.sh installs it)" % tool
    probe = "agsc%d-probe" % os.getpid()
    try:
        run("ip", "netns", "add", probe)
    except NetError as e:
        return "cannot create a network namespace: %s" % e
    try:
        run("ip", "-n", probe, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
        run("ip", "netns", "exec", probe, "nft", "add", "table", "inet", "probe")
        # The orchestrator's threads enter namespaces with setns(2): try it and come back.
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            _setns("/run/netns/" + probe)
        finally:
            _libc.setns(home, CLONE_NEWNET)
            os.close(home)
    except NetError as e:
        return "namespace made, but: %s" % e
    finally:
        run("ip", "netns", "del", probe, check=False)
    return None


def netem_available():
    """Whether the kernel has sch_netem (probed in a throwaway namespace)."""
    probe = "agsc%d-netem" % os.getpid()
    run("ip", "netns", "add", probe)
    try:
        run("ip", "-n", probe, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
        p = subprocess.run(["tc", "-n", probe, "qdisc", "add", "dev", "v0", "root", "netem",
                            "delay", "1ms"], capture_output=True)
        return p.returncode == 0
    finally:
        run("ip", "netns", "del", probe, check=False)


def remove_stale():
    """Deletes namespaces left by an earlier run of this test whose process is gone.

    Only names this module gives (agsc<pid>-...) are considered, and only when
    that pid no longer runs. Returns the names removed."""
    out = run("ip", "netns", "list", check=False)
    gone = []
    for line in out.splitlines():
        name = line.split()[0] if line.split() else ""
        m = NAME_RE.match(name)
        if not m:
            continue
        pid = int(m.group(1))
        if pid == os.getpid() or os.path.exists("/proc/%d" % pid):
            continue
        run("ip", "netns", "del", name, check=False)
        gone.append(name)
    return gone


class Shape:
    """How a node's data link is degraded: loss (percent), delay, jitter (ms), rate (kbit/s)."""

    def __init__(self, loss=0.0, delay=0, jitter=0, rate=0):
        self.loss, self.delay, self.jitter, self.rate = loss, delay, jitter, rate

    def __str__(self):
        parts = []
        if self.loss:
            parts.append("loss %.1f%%" % self.loss)
        if self.delay:
            parts.append("delay %dms±%dms" % (self.delay, self.jitter))
        if self.rate:
            parts.append("rate %dkbit" % self.rate)
        return ", ".join(parts) or "clean"


NFT_TABLE = """
table inet chaos {
  set blocked { type ipv4_addr; }
  chain input { type filter hook input priority 0; policy accept;
    iifname "d0" ip saddr @blocked drop; }
  chain lossin { type filter hook input priority 10; policy accept; }
  chain lossout { type filter hook output priority 10; policy accept; }
}
"""


class Net:
    """The namespaces of one run. Call create(), then destroy() in a finally."""

    def __init__(self, n_nodes, use_netem=None):
        self.n = n_nodes
        self.prefix = "agsc%d" % os.getpid()
        self.made = []
        self.netem = netem_available() if use_netem is None else use_netem
        self._home = None
        self._blocked = [set() for _ in range(n_nodes)]
        self._shape = [None] * n_nodes

    # Names and addresses.
    def ns(self, i):
        return "%s-n%d" % (self.prefix, i)

    @property
    def br(self):
        return self.prefix + "-br"

    @property
    def ctl(self):
        return self.prefix + "-ctl"

    def data_ip(self, i):
        return "%s.%d" % (DATA_NET, 10 + i)

    def ctl_ip(self, i):
        return "%s.%d" % (CTL_NET, 10 + i)

    def _add_ns(self, name):
        run("ip", "netns", "add", name)
        self.made.append(name)
        run("ip", "-n", name, "link", "set", "lo", "up")

    def create(self):
        self._add_ns(self.br)
        run("ip", "-n", self.br, "link", "add", "br0", "type", "bridge")
        run("ip", "-n", self.br, "link", "set", "br0", "up")
        self._add_ns(self.ctl)
        run("ip", "-n", self.ctl, "link", "add", "cbr", "type", "bridge")
        run("ip", "-n", self.ctl, "addr", "add", CTL_NET + ".1/24", "dev", "cbr")
        run("ip", "-n", self.ctl, "link", "set", "cbr", "up")
        # The writers open many short TCP connections to the APIs.
        run("ip", "netns", "exec", self.ctl, "sysctl", "-q", "-w", "net.ipv4.tcp_tw_reuse=1",
            "net.ipv4.ip_local_port_range=10000 65000")
        for i in range(self.n):
            ns = self.ns(i)
            self._add_ns(ns)
            run("ip", "-n", ns, "link", "add", "d0", "type", "veth", "peer", "name", "p%d" % i,
                "netns", self.br)
            run("ip", "-n", self.br, "link", "set", "p%d" % i, "master", "br0")
            run("ip", "-n", self.br, "link", "set", "p%d" % i, "up")
            run("ip", "-n", ns, "addr", "add", self.data_ip(i) + "/24", "dev", "d0")
            run("ip", "-n", ns, "link", "set", "d0", "up")
            run("ip", "-n", ns, "link", "add", "c0", "type", "veth", "peer", "name", "q%d" % i,
                "netns", self.ctl)
            run("ip", "-n", self.ctl, "link", "set", "q%d" % i, "master", "cbr")
            run("ip", "-n", self.ctl, "link", "set", "q%d" % i, "up")
            run("ip", "-n", ns, "addr", "add", self.ctl_ip(i) + "/24", "dev", "c0")
            run("ip", "-n", ns, "link", "set", "c0", "up")
            run("ip", "netns", "exec", ns, "nft", "-f", "-", input=NFT_TABLE)

    def destroy(self):
        """Deletes every namespace made (processes inside must be stopped first)."""
        self.leave()
        for name in reversed(self.made):
            run("ip", "netns", "del", name, check=False)
        self.made = []

    # The calling thread's namespace. Threads started afterwards inherit it.
    def enter_ctl(self):
        if self._home is None:
            self._home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        _setns("/run/netns/" + self.ctl)

    def leave(self):
        if self._home is not None:
            if _libc.setns(self._home, CLONE_NEWNET) != 0:
                raise NetError("setns back: %s" % os.strerror(ctypes.get_errno()))
            os.close(self._home)
            self._home = None

    # Partitions: node i drops every packet that comes from the data addresses of `blocked`.
    def set_blocked(self, i, blocked):
        blocked = set(blocked)
        if blocked == self._blocked[i]:
            return
        ns = self.ns(i)
        run("ip", "netns", "exec", ns, "nft", "flush", "set", "inet", "chaos", "blocked")
        if blocked:
            elems = ", ".join(self.data_ip(j) for j in sorted(blocked))
            run("ip", "netns", "exec", ns, "nft", "add", "element", "inet", "chaos", "blocked",
                "{ %s }" % elems)
        self._blocked[i] = blocked

    # Link shape of node i's data link (both directions); None clears it.
    def set_shape(self, i, shape):
        ns = self.ns(i)
        ends = [(ns, "d0"), (self.br, "p%d" % i)]
        for where, dev in ends:
            run("tc", "-n", where, "qdisc", "del", "dev", dev, "root", check=False)
        run("ip", "netns", "exec", ns, "nft", "flush", "chain", "inet", "chaos", "lossin")
        run("ip", "netns", "exec", ns, "nft", "flush", "chain", "inet", "chaos", "lossout")
        self._shape[i] = shape
        if shape is None:
            return
        if self.netem:
            args = []
            if shape.loss:
                args += ["loss", "%.2f%%" % shape.loss]
            if shape.delay:
                args += ["delay", "%dms" % shape.delay, "%dms" % shape.jitter]
            if shape.rate:
                args += ["rate", "%dkbit" % shape.rate]
            if args:
                for where, dev in ends:
                    run("tc", "-n", where, "qdisc", "add", "dev", dev, "root", "netem", *args)
            return
        if shape.loss:
            # Each direction drops loss% of the packets (nftables' random numbers).
            permille = max(1, int(round(shape.loss * 10)))
            for chain, ifkey in (("lossin", "iifname"), ("lossout", "oifname")):
                run("ip", "netns", "exec", ns, "nft", "add", "rule", "inet", "chaos", chain,
                    ifkey, '"d0"', "numgen", "random", "mod", "1000", "<", str(permille), "drop")
        if shape.rate:
            for where, dev in ends:
                run("tc", "-n", where, "qdisc", "add", "dev", dev, "root", "tbf", "rate",
                    "%dkbit" % shape.rate, "burst", "16kb", "latency", "300ms")

    def heal(self):
        """Removes every partition and link shape."""
        for i in range(self.n):
            self.set_blocked(i, set())
            if self._shape[i] is not None:
                self.set_shape(i, None)
