"""admin: management of agents, channels, chats, dead letters and secrets; the admin HTTP API."""
