"""Where ``summitcast serve`` used to name uvicorn's ws class; it lives in web/transport now.

Kept so that a uvicorn started with ``--ws summitcast.web.presence_socket:PresenceWebSockets``
(an older deployment's unit file, a test server) still gets the callback-only presence socket.
"""

from summitcast.web.transport.presence_socket import PresenceWebSockets

__all__ = ["PresenceWebSockets"]
