"""`python -m omnibot.launcher` is the `omnibot` command (used where the script is not on PATH)."""

from omnibot.launcher.cli import main

main()
