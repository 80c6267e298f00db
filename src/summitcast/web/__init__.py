"""summitcast.web."""
