"""launcher: the `omnibot` command: runs the services and dispatches the management commands."""
