# SPDX-License-Identifier: Apache-2.0
"""Builds agentsync._agentsync with the project's CMake (bindings/python/CMakeLists.txt).

The extension embeds the C library, so it is built from the checkout this
directory is in: CMake configures the repository (Release, no tests, no
benchmarks), builds the target agentsync_python, and the file it makes is
copied into the wheel. The list of C sources lives in CMake only.
Needs the Debian packages of scripts/install-deps.sh (compiler, CMake, the
libraries' -dev packages, python3-dev).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


class CMakeBuild(build_ext):
    def build_extension(self, ext: Extension) -> None:
        if not (ROOT / "CMakeLists.txt").is_file() or not (ROOT / "lib").is_dir():
            raise SystemExit(
                f"agentsync: {ROOT} is not an agentsync checkout: the extension is built "
                "from the repository this directory belongs to")
        build = Path(self.build_temp).resolve() / "cmake"
        jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL") or str(os.cpu_count() or 2)
        subprocess.check_call([
            "cmake", "-S", str(ROOT), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
            "-DAGS_TESTS=OFF", "-DAGS_BENCH=OFF", "-DAGS_PYTHON=ON", "-DAGS_NODE=OFF", "-DAGS_INSTALL_RULES=OFF",
            f"-DPython3_EXECUTABLE={sys.executable}"])
        subprocess.check_call(["cmake", "--build", str(build), "--target", "agentsync_python",
                               "-j", jobs])
        built = build / "python" / "agentsync" / "_agentsync.abi3.so"
        dest = Path(self.get_ext_fullpath(ext.name))
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built, dest)


setup(
    ext_modules=[Extension("agentsync._agentsync", sources=[], py_limited_api=True)],
    cmdclass={"build_ext": CMakeBuild},
    options={"bdist_wheel": {"py_limited_api": "cp311"}},
)
