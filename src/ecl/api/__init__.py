"""ECL api layer."""
