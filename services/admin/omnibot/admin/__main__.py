"""`python -m omnibot.admin` is the `omnibot` command (used where the script is not on PATH)."""

from omnibot.admin.cli import main

main()
