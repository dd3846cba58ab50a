# SPDX-License-Identifier: Apache-2.0
"""The shell completions the build generated (`agentsync completion bash|zsh`,
build/completions/) offer every command of `agentsync --help`, the
subcommands, and for each command every option its --help lists. bash runs
the real completion function with COMP_WORDS/COMP_CWORD, as bash does on
<Tab>; zsh runs the real function with stand-ins for compadd, _describe and
_files that print what they are given."""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import agsproc as A  # noqa: E402
from man_help_test import help_opts, helptext  # noqa: E402

BUILD = os.environ.get("AGS_BUILD_DIR", os.getcwd())
BASH = os.path.join(BUILD, "completions", "agentsync")
ZSH = os.path.join(BUILD, "completions", "_agentsync")


def q(w):
    return "'" + w.replace("'", "'\\''") + "'"


def bash(words):
    script = ("source %s\nCOMP_WORDS=(%s)\nCOMP_CWORD=%d\nCOMPREPLY=()\n_agentsync\n"
              "printf '%%s\\n' \"${COMPREPLY[@]}\"\n" %
              (q(BASH), " ".join(q(w) for w in words), len(words) - 1))
    r = subprocess.run(["bash", "--norc", "--noprofile", "-c", script],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    A.check(r.returncode == 0 and not r.stderr, "bash completion of %s: %s" % (words, r.stderr))
    return set(x for x in r.stdout.split("\n") if x)


def zsh(words):
    # Like zsh's own, the stand-ins keep only the candidates the word typed begins.
    script = ("offer() { local x; for x in \"$@\"; do [[ $x == ${words[CURRENT]}* ]] && "
              "print -r -- $x; done; }\n"
              "compadd() { [[ $1 == -- ]] && shift; offer \"$@\"; }\n"
              "_describe() { local n=${@[-1]}; local x; for x in ${(P)n}; do "
              "offer ${x%%%%:*}; done; }\n"
              "_files() { print -r -- __files__; }\n"
              "words=(%s)\nCURRENT=%d\nsource %s\n" %
              (" ".join(q(w) for w in words), len(words), q(ZSH)))
    r = subprocess.run(["zsh", "-f", "-c", script], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    A.check(not r.stderr, "zsh completion of %s: %s" % (words, r.stderr))
    return set(x for x in r.stdout.split("\n") if x)


def main():
    for f in (BASH, ZSH):
        A.check(os.path.isfile(f), "the build did not generate " + f)
    A.check(subprocess.run(["bash", "-n", BASH]).returncode == 0, "bash -n " + BASH)
    A.check(subprocess.run(["zsh", "-n", ZSH]).returncode == 0, "zsh -n " + ZSH)
    top = helptext("agentsync", "--help")
    cmds_part = top.split("\nCommands:\n", 1)[1].split("\nRun ", 1)[0]
    commands = [m.group(1) for m in re.finditer(r"^  ([a-z]+)", cmds_part, re.M)]
    A.check(len(commands) >= 10, "too few commands in agentsync --help: %s" % commands)
    glob = help_opts(top.split("\nOptions:\n", 1)[1].split("\n\n", 1)[0])
    for name, complete in (("bash", bash), ("zsh", zsh)):
        got = complete(["agentsync", ""])
        A.check(got == set(commands), "%s offers %s for a command, agentsync --help has %s" %
                (name, sorted(got), sorted(commands)))
        got = complete(["agentsync", "--api", "127.0.0.1:1", "sta"])
        A.check(got == {"status"}, "%s after a global option: %s" % (name, sorted(got)))
        got = complete(["agentsync", "--"]) - {"-h"}
        A.check(got == glob - {"-h"}, "%s global options %s, --help %s" %
                (name, sorted(got), sorted(glob)))
        for c in commands:
            text = helptext("agentsync", c, "--help")
            if c == "sync":
                text += helptext("agentsync", "sync", "--hub", "x", "--help")
            if c == "agent":
                for sub in ("put", "sync", "get", "status"):
                    text += helptext("agentsync", "agent", sub, "--help")
            want = help_opts(text) - {"-h"}
            want.add("--help")
            got = complete(["agentsync", c, "--"])
            A.check(got == want, "%s: agentsync %s --<Tab> offers %s, its --help lists %s" %
                    (name, c, sorted(got), sorted(want)))
        for c, subs in (("peers", {"add", "remove"}), ("agent", {"put", "sync", "get", "status"}),
                        ("certs", {"init"}), ("completion", {"bash", "zsh"})):
            got = complete(["agentsync", c, ""])
            A.check(got == subs, "%s: agentsync %s <Tab> offers %s, not %s" %
                    (name, c, sorted(got), sorted(subs)))
    print("completion: 2 passed, 0 failed")


if __name__ == "__main__":
    main()
