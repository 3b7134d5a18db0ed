"""`python -m maglev` runs the daemon CLI (maglevd)."""

from __future__ import annotations

from maglev.cli.maglevd import main

if __name__ == "__main__":
    main()
