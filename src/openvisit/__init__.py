"""OpenVisit: virtual prison visits."""

__version__ = "0.1.0"
