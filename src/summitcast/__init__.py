"""summitcast: run a global online summit."""

__version__ = "0.1.0"
