"""summitcast.audit."""
