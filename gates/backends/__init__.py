"""gates/backends."""
