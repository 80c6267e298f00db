"""summitcast.presence."""
