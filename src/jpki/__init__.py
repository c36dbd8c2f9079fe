"""jpki: Japan Public Personal Authentication (My Number card) client, simulator and verifier."""

__version__ = "0.1.0"
