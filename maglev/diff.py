"""Selects the diff engine: the compiled `_diff` unless MAGLEV_NO_EXTENSIONS=1.

MAGLEV_REQUIRE_EXTENSIONS=1 turns a missing compiled engine into an ImportError (CI uses it to
prove the Cython build really loaded).
"""

from __future__ import annotations

import os

if os.environ.get("MAGLEV_NO_EXTENSIONS", "") in ("1", "true", "yes"):
    from maglev import _diff_py as _engine

    IMPLEMENTATION = "python"
else:
    try:
        from maglev import _diff as _engine  # type: ignore[attr-defined,no-redef,unused-ignore]

        IMPLEMENTATION = "cython"
    except ImportError:
        if os.environ.get("MAGLEV_REQUIRE_EXTENSIONS", "") in ("1", "true", "yes"):
            raise
        from maglev import _diff_py as _engine

        IMPLEMENTATION = "python"

engine_name = _engine.engine_name
