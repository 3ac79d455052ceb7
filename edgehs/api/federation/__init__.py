"""Server-Server API handlers, one file per spec module. Served on the client listener until
edgehs has a federation listener."""
