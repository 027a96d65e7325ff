"""An example ECL user package: release notes from a list of changes."""
