# SPDX-License-Identifier: Apache-2.0
"""README.md's "Two nodes in five minutes" runs as written (issue 15, README):
its ```sh blocks are taken from the file, in order, and run by one bash in an
empty directory with the build's programs first in PATH. Only the four port
numbers are replaced by free ones (other daemons may hold the documented
ones). Then: every command exited 0, put stored the pattern, b's watch
printed its pattern:received, and both nodes show one digest."""
import os
import re
import shutil
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import agsproc as A  # noqa: E402

SECTION = "## Two nodes in five minutes"


def blocks():
    text = open(os.path.join(A.SRC, "README.md"), encoding="utf-8").read()
    A.check(SECTION in text, "README.md has no section %r" % SECTION)
    sec = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    found = re.findall(r"^```sh\n(.*?)^```$", sec, re.S | re.M)
    A.check(len(found) >= 4, "the quickstart has only %d sh blocks" % len(found))
    return found


def free_port(kind):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    script = "\n".join(blocks())
    for fixed in ("4433", "4434", "7433", "7434"):
        A.check(fixed in script, "the quickstart no longer uses port %s" % fixed)
    ports = {"4433": free_port(socket.SOCK_DGRAM), "4434": free_port(socket.SOCK_DGRAM),
             "7433": free_port(socket.SOCK_STREAM), "7434": free_port(socket.SOCK_STREAM)}
    script = re.sub(r"\b(4433|4434|7433|7434)\b", lambda m: str(ports[m.group(1)]), script)
    wd = A.workdir("readme")
    env = dict(os.environ, PATH=A.BIN + os.pathsep + os.environ.get("PATH", ""))
    env.pop("AGENTSYNC_API", None)
    env.pop("AGENTSYNC_TOKEN", None)
    # -e: a failing command fails the test. The script stops its daemons; on a
    # timeout its whole process group (a session of its own) is killed.
    p = subprocess.Popen(["bash", "-e", "-c", script], cwd=wd, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = p.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, 9)
        out, _ = p.communicate()
        A.fail("the quickstart did not finish:\n" + out)
    A.check(p.returncode == 0, "the quickstart failed (exit %d):\n%s" % (p.returncode, out))
    A.check("stored 1, unchanged 0" in out, "put did not store the pattern:\n" + out)
    A.check('"type":"pattern:received"' in out and '"id":"hello"' in out,
            "watch on b did not print the pattern:received of hello:\n" + out)
    digests = re.findall(r"^digest\s+([0-9a-f]{64})$", out, re.M)
    A.check(len(digests) == 2 and digests[0] == digests[1],
            "the two status outputs do not show one digest: %s\n%s" % (digests, out))
    shutil.rmtree(wd, ignore_errors=True)
    print("README quickstart: passed")


if __name__ == "__main__":
    main()
