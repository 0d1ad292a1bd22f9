"""The stack on this machine without Docker: `configgen up` and `configgen down`."""
