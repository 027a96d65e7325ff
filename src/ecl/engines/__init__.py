"""ECL engines layer."""
