"""The web dashboard at ``/ui``."""
