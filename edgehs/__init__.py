"""edgehs: a Matrix homeserver small enough for a Raspberry Pi."""

__version__ = "0.1.0"
