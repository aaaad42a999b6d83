"""launcher: the `omnibot` command: runs the services and dispatches the management commands.

A tool, above the services: it imports them, and no service imports it.
"""
