"""Build script: declares the Cython diff engine.

`pip install .` compiles maglev/_diff.pyx; a failed compile fails the install (there is no
silent fallback). MAGLEV_NO_EXTENSIONS=1 skips the extension and installs the pure-Python twin
only.
"""

from __future__ import annotations

import os

from setuptools import setup

ext_modules = []
if os.environ.get("MAGLEV_NO_EXTENSIONS", "") not in ("1", "true", "yes"):
    from Cython.Build import cythonize

    ext_modules = cythonize(
        ["maglev/_diff.pyx"],
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False},
    )

setup(ext_modules=ext_modules)
