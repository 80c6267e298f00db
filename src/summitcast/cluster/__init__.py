"""The cluster harness: a whole summitcast topology as processes on loopback addresses."""
