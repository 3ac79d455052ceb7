"""Client-Server API handlers, one file per spec module."""
