"""The `worldloop` command line."""
