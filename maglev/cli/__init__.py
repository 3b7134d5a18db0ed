"""maglev.cli."""
