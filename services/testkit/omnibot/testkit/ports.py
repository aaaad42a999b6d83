"""Free TCP ports on the loopback interface, for servers a test or a run starts.

The one implementation lives with the development MongoDB-protocol server (the shared package needs
it there, and the shared package cannot import the kit); the kit names it for everything else.
"""

from __future__ import annotations

from omnibot.shared.devmongo import free_port

__all__ = ["free_port"]
