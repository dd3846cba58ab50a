# SPDX-License-Identifier: Apache-2.0
"""The build backend: setuptools', unchanged, plus Debian's ``wheel``.

With setuptools older than 70.1 (Debian 12 has 66) building a wheel needs the
``wheel`` package, which a new venv does not have and pip cannot download
here (no package index). Debian ships it as a wheel file
(python3-wheel-whl, /usr/share/python-wheels); a wheel is a zip Python can
import from, so it is put on the path when ``wheel`` is missing.
"""

import glob
import sys

try:
    import wheel  # noqa: F401
except ImportError:
    sys.path.extend(sorted(glob.glob("/usr/share/python-wheels/wheel-*.whl"))[-1:])

from setuptools.build_meta import *  # noqa: E402,F401,F403
