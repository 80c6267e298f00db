"""Fast paths that skip the framework: the heartbeat, the presence socket protocol, chunk uploads."""
