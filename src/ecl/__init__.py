"""ECL: durable AI workflows."""
