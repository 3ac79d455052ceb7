"""Pure Matrix protocol logic: no I/O, no aiohttp, no sqlite, no clock."""
