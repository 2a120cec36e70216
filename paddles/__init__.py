"""paddles: a JSON results server for test labs."""

__version__ = "0.1.0"
