"""Storage: aiosqlite only, SQL kept beside the code that runs it."""
