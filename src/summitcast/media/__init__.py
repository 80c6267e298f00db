"""summitcast.media."""
