"""`python -m benchmarks` = `maglev-bench`."""

from __future__ import annotations

from benchmarks.runner import main

main()
