"""summitcast.interchange."""
