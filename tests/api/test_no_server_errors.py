"""The autouse ``no_server_errors`` fixture (tests/api/conftest.py) sees every 500."""

from aiohttp.test_utils import TestClient
from support import V3

from edgehs.api.keys import HS_KEY


async def test_a_500_is_recorded(client: TestClient, server_errors: list[str]) -> None:
    async def broken(localpart: str) -> bool:
        raise RuntimeError("provoked")

    client.app[HS_KEY].users.is_available = broken  # type: ignore[method-assign]
    resp = await client.get(f"{V3}/register/available", params={"username": "zed"})
    assert resp.status == 500
    assert server_errors == [f"GET {V3}/register/available"]
    server_errors.clear()  # recorded as it should be: not a failure of this test
