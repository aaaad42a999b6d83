"""admin: management of agents, channels and chats; the omnibot command line."""
