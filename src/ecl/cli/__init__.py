"""ECL cli layer."""
