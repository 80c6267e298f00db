"""summitcast.web.routes."""
