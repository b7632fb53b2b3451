"""The `browserfleet` command: serve, keys, projects."""
