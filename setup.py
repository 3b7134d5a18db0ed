"""Build script: declares the Cython engines (diff, Maglev table, the config's fast loader and
the fast probes' socket calls).

`pip install .` compiles maglev/_diff.pyx, maglev/_table.pyx, maglev/health/_sockops.pyx and
maglev/config/_fastload.pyx; a failed compile fails the install (there is no silent fallback).
`_fastload` is linked with libyaml (`libyaml-dev` on Debian: `make` installs it when
/usr/include/yaml.h is missing).
MAGLEV_NO_EXTENSIONS=1 skips the extensions and installs the pure-Python twins only.
"""

from __future__ import annotations

import os

from setuptools import Extension, setup

ext_modules = []
if os.environ.get("MAGLEV_NO_EXTENSIONS", "") not in ("1", "true", "yes"):
    from Cython.Build import cythonize

    ext_modules = cythonize(
        [
            Extension("maglev._diff", ["maglev/_diff.pyx"]),
            Extension("maglev._table", ["maglev/_table.pyx"]),
            Extension("maglev.health._sockops", ["maglev/health/_sockops.pyx"]),
            Extension("maglev.config._fastbuild", ["maglev/config/_fastbuild.pyx"]),
            Extension(
                "maglev.config._fastload", ["maglev/config/_fastload.pyx"], libraries=["yaml"]
            ),
        ],
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False},
    )

setup(ext_modules=ext_modules)
