"""Fast paths served before routing: the heartbeat, the presence socket, upload chunks."""
