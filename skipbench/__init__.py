"""skipbench: measure what skip connections do to a network."""

__version__ = "0.1.0"
