# SPDX-License-Identifier: Apache-2.0
"""The type hints: mypy --strict (Debian's python3-mypy) accepts the package and
a program using its whole typed surface, and refuses the wrong uses in
typing/wrong.py, exactly the lines marked "# E"."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

import agentsync

HERE = os.path.dirname(os.path.abspath(__file__))
PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(agentsync.__file__)))


def _mypy(tmp_path, *args: str) -> subprocess.CompletedProcess:
    try:
        import mypy  # noqa: F401
    except ImportError:
        pytest.fail("mypy is missing: run scripts/install-deps.sh (python3-mypy)")
    env = dict(os.environ, MYPYPATH=PKG_DIR)
    return subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-error-summary",
                           "--cache-dir", str(tmp_path / "cache"), *args],
                          env=env, capture_output=True, text=True, timeout=600, cwd=str(tmp_path))


def test_the_package_and_a_program_using_it_pass_mypy_strict(tmp_path):
    assert os.path.exists(os.path.join(PKG_DIR, "agentsync", "py.typed"))
    r = _mypy(tmp_path, os.path.join(PKG_DIR, "agentsync"), os.path.join(HERE, "typing", "usage.py"))
    assert r.returncode == 0, r.stdout + r.stderr


def test_wrong_uses_are_refused(tmp_path):
    path = os.path.join(HERE, "typing", "wrong.py")
    with open(path) as f:
        marked = {i for i, line in enumerate(f, 1) if re.search(r"#\s*E(:|\s*$)", line)}
    r = _mypy(tmp_path, path)
    assert r.returncode == 1, r.stdout + r.stderr
    flagged = {int(m.group(1)) for m in re.finditer(r"wrong\.py:(\d+): error:", r.stdout)}
    assert flagged == marked, r.stdout
