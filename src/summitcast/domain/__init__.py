"""Pure rules and types of summitcast: no I/O, no frameworks."""
