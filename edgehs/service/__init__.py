"""Behaviour: the write path, rooms, sync, users. Never imports aiohttp.web."""
