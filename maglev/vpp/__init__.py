"""maglev.vpp."""
