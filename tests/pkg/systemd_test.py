# SPDX-License-Identifier: Apache-2.0
"""The systemd unit and the daemon's readiness:

1. `systemd-analyze verify` accepts agentsyncd.service as the build made it
   (ExecStart pointed at the built daemon, the man pages it names found in
   the build), and `systemd-analyze security --offline` rates its exposure
   at most 2.0 (hardening that goes away fails the test).
2. With $NOTIFY_SOCKET set, as systemd sets it for Type=notify, the daemon
   sends READY=1 once it listens, RELOADING=1 then READY=1 on SIGHUP, and
   STOPPING=1 on SIGTERM (read from a datagram socket the test owns)."""
import os
import shutil
import signal
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import agsproc as A  # noqa: E402

BUILD = os.environ.get("AGS_BUILD_DIR", os.getcwd())


def verify(wd):
    unit_src = os.path.join(BUILD, "packaging", "agentsyncd.service")
    with open(unit_src) as f:
        text = f.read()
    A.check("Type=notify" in text, "the unit is not Type=notify (built without libsystemd?)")
    for key in ("User=agentsync", "StateDirectory=agentsync", "ConfigurationDirectory=agentsync",
                "ExecReload=/bin/kill -HUP $MAINPID", "NoNewPrivileges=yes",
                "ProtectSystem=strict", "PrivateTmp=yes"):
        A.check(("\n" + key + "\n") in text, "the unit lacks " + key)
    bindir = [ln for ln in text.splitlines() if ln.startswith("ExecStart=")][0].split()[0]
    bindir = os.path.dirname(bindir[len("ExecStart="):])
    unit = os.path.join(wd, "agentsyncd.service")
    with open(unit, "w") as f:
        f.write(text.replace(bindir + "/agentsyncd", os.path.join(A.BIN, "agentsyncd")))
    man = os.path.join(wd, "man")
    for page in ("agentsync.1", "agentsync.json.5", "agentsyncd.8"):
        d = os.path.join(man, "man" + page[-1])
        os.makedirs(d, exist_ok=True)
        shutil.copy(os.path.join(BUILD, "man", page), d)
    env = dict(os.environ, MANPATH=man, SYSTEMD_LOG_LEVEL="notice")
    r = subprocess.run(["systemd-analyze", "verify", unit], env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    A.check(r.returncode == 0 and r.stdout.strip() == "",
            "systemd-analyze verify (exit %d):\n%s" % (r.returncode, r.stdout))
    r = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--threshold=20",
                        "--no-pager", unit], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    A.check(r.returncode == 0, "systemd-analyze security: exposure over 2.0:\n" +
            r.stdout[-600:])


def notify(wd):
    path = os.path.join(wd, "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(60)
    os.environ["NOTIFY_SOCKET"] = path
    try:
        d = A.Daemon(wd, "n", certs=None)
        d.config = lambda: {"quic": {"nodeId": "n", "port": 0, "dataDir": d.data,
                                     "api": {"listen": "127.0.0.1:0"}}}
        d.start()
    finally:
        del os.environ["NOTIFY_SOCKET"]

    def expect(word):
        while True:
            try:
                msg = sock.recv(4096).decode()
            except socket.timeout:
                A.fail("no %s from the daemon on $NOTIFY_SOCKET" % word)
            fields = msg.split("\n")
            if word in fields:
                return fields

    f = expect("READY=1")
    A.check(any(x.startswith("STATUS=node n") for x in f), "READY=1 without STATUS: %s" % f)
    d.proc.send_signal(signal.SIGHUP)
    f = expect("RELOADING=1")
    A.check(any(x.startswith("MONOTONIC_USEC=") for x in f), "RELOADING=1 without MONOTONIC_USEC")
    expect("READY=1")
    d.proc.send_signal(signal.SIGTERM)
    expect("STOPPING=1")
    A.check(d.stop() == 0, "the daemon did not stop cleanly")
    sock.close()


def main():
    wd = A.workdir("systemd")
    try:
        verify(wd)
        notify(wd)
        print("systemd: 2 passed, 0 failed")
    finally:
        A.cleanup(wd)


if __name__ == "__main__":
    main()
