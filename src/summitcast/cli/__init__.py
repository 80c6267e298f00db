"""summitcast.cli."""
