"""Build script: declares the Cython engines (diff and Maglev table).

`pip install .` compiles maglev/_diff.pyx and maglev/_table.pyx; a failed compile fails the
install (there is no silent fallback). MAGLEV_NO_EXTENSIONS=1 skips the extensions and installs
the pure-Python twins only.
"""

from __future__ import annotations

import os

from setuptools import setup

ext_modules = []
if os.environ.get("MAGLEV_NO_EXTENSIONS", "") not in ("1", "true", "yes"):
    from Cython.Build import cythonize

    ext_modules = cythonize(
        ["maglev/_diff.pyx", "maglev/_table.pyx"],
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False},
    )

setup(ext_modules=ext_modules)
