"""maglev benchmark suites; run with `maglev-bench` or `python -m benchmarks`."""
