"""maglev.health/checks."""
