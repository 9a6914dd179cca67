"""See examples/README.md."""
