"""maglev.health."""
