"""summitcast.storage."""
