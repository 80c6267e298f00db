"""Long-running reconcilers and job handlers that drive the use cases."""
