"""dialog: runs the agents for each chat and keeps chat state in MongoDB."""
