"""Shared core of omnibot: wire messages, settings, AMQP topology and plumbing, storage, logging."""
