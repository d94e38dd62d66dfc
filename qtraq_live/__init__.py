"""qtraq-live: the real-time waiting room of a clinic."""

__version__ = "0.1.0"
