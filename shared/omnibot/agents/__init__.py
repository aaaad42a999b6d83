"""The pure agents library: the agent format, its validation and the engine (no I/O, no clock)."""
