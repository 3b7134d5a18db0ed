"""maglev.vppsim."""
