"""maglev.daemon."""
