# SPDX-License-Identifier: Apache-2.0
"""agentsync's help (issue 15 item 12):

- `agentsync help` is `agentsync --help`, and `agentsync help COMMAND [SUB]`
  is `agentsync COMMAND [SUB] --help`, for every command of the table;
- every form of a command with subcommands has a help of its own (peers add,
  peers remove, agent put|sync|get|status), with its exit codes;
- `--api HOST` without a port means the API's default port 7433, not 80."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import agsproc as A  # noqa: E402

CLI = os.path.join(A.BIN, "agentsync")


def out(*args):
    r = A.run([CLI] + list(args))
    return r.returncode, r.stdout, r.stderr


def main():
    rc, top, _ = out("--help")
    A.check(rc == 0, "agentsync --help exited %d" % rc)
    rc, helped, _ = out("help")
    A.check(rc == 0 and helped == top, "agentsync help is not agentsync --help")
    cmds = re.findall(r"^  ([a-z]+)", top.split("\nCommands:\n", 1)[1].split("\nRun ", 1)[0],
                      re.M)
    A.check("help" in cmds and len(cmds) > 10, "commands: %s" % cmds)
    for c in cmds:
        rc, own, _ = out(c, "--help")
        rc2, via, _ = out("help", c)
        A.check(rc == 0 and rc2 == 0 and own == via,
                "agentsync help %s differs from agentsync %s --help" % (c, c))
        A.check(own != top and "Usage: agentsync" in own, "%s --help is not its own" % c)
    forms = {("peers",): "agentsync peers [--json]", ("peers", "add"): "agentsync peers add",
             ("peers", "remove"): "agentsync peers remove",
             ("agent", "put"): "agentsync agent put", ("agent", "get"): "agentsync agent get",
             ("agent", "status"): "agentsync agent status",
             ("agent", "sync"): "agentsync sync --hub"}
    texts = {}
    for form, usage in forms.items():
        rc, text, _ = out(*(form + ("--help",)))
        A.check(rc == 0, "%s --help exited %d" % (" ".join(form), rc))
        first = text.splitlines()[0]
        A.check(first.startswith("Usage: " + usage), "%s --help starts %r" % (" ".join(form),
                                                                         first))
        A.check("Exit status" in text, "%s --help has no exit status" % " ".join(form))
        rc, via, _ = out(*(("help",) + form))
        A.check(rc == 0 and via == text, "agentsync help %s differs" % " ".join(form))
        texts[form] = text
    A.check(len(set(texts.values())) == len(texts), "two forms share one help")
    rc, _, err = out("help", "nope")
    A.check(rc == 2 and "unknown command" in err, "help nope: %d %s" % (rc, err))

    # No daemon listens there: the message names the URL it tried.
    for api, want in (("127.0.0.1", "http://127.0.0.1:7433"), ("[::1]", "http://[::1]:7433"),
                      ("::1", "http://[::1]:7433"), ("http://localhost/", "http://localhost:7433"),
                      ("127.0.0.1:9", "http://127.0.0.1:9")):
        rc, o, err = out("--api", api, "status")
        A.check(rc == 3 and want in err, "--api %s: exit %d, %s" % (api, rc, err.strip()))
    print("cli help: passed")


if __name__ == "__main__":
    main()
