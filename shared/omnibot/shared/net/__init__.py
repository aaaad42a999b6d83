"""Outbound HTTP to urls omnibot does not control: the network policy and the safe HTTP client."""
