# SPDX-License-Identifier: Apache-2.0
"""Install as a user would: a new venv, pip, Debian's packages only, no index.

The checkout is copied first (pip builds in the directory it is given), so
the test leaves nothing in the source tree. Then the venv's Python, from
outside any source directory, starts a node and stores a pattern.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))

# What a build of the extension needs from the checkout.
NEEDED = ["CMakeLists.txt", "include", "lib", "src", "bindings/python"]


def _ignore(d, names):
    return {n for n in names if n in ("build", ".venv", "__pycache__") or n.endswith(".egg-info")}


def test_pip_install_into_a_new_venv(tmp_path):
    if not os.path.exists("/usr/bin/python3"):
        pytest.skip("Debian's /usr/bin/python3 is what this test installs with")
    src = tmp_path / "checkout"
    for rel in NEEDED:
        s, d = os.path.join(ROOT, rel), src / rel
        if os.path.isdir(s):
            shutil.copytree(s, d, ignore=_ignore)
        else:
            d.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(s, d)
    venv = tmp_path / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", str(venv)], check=True, timeout=300)
    env = dict(os.environ, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.pop("PYTHONPATH", None)
    r = subprocess.run([str(venv / "bin" / "pip"), "install", "--no-build-isolation",
                        str(src / "bindings" / "python")],
                       env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "Successfully installed agentsync" in r.stdout
    script = textwrap.dedent("""
        import sys, tempfile, agentsync, agentsync.aio
        assert "site-packages" in agentsync.__file__, agentsync.__file__
        d = tempfile.mkdtemp()
        with agentsync.Node({"nodeId": "solo", "host": "127.0.0.1", "port": 0, "dataDir": d}) as n:
            r = n.sync_pattern({"id": "p", "agentId": "a", "type": "t", "data": {"x": 1},
                                "metadata": {"source": "s", "tags": []}, "timestamp": 1, "version": 1})
            assert r["outcome"] == "inserted", r
            assert n.get_state()["store"]["patterns"] == 1
        print("ok", agentsync.__version__)
    """)
    r = subprocess.run([str(venv / "bin" / "python"), "-c", script], cwd=str(tmp_path), env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("ok ")
    # One build for every CPython >= 3.11: the stable ABI's file name.
    site = subprocess.run([str(venv / "bin" / "python"), "-c",
                           "import agentsync, os; print(os.path.dirname(agentsync.__file__))"],
                          env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert "_agentsync.abi3.so" in os.listdir(site)
    assert "py.typed" in os.listdir(site)
