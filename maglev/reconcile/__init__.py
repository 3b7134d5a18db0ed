"""maglev.reconcile."""
