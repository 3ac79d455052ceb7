"""The push rule listings are served at the spec's paths, which end in "/"; other paths under
/pushrules are unknown endpoints (404, or 405 for a wrong method) with M_UNRECOGNIZED.

https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3pushrules
https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3pushrulesglobal
"""

import pytest
from aiohttp.test_utils import TestClient
from spec_schema import MatrixSpec
from support import V3, Env, expect


async def test_listings_with_trailing_slash(client: TestClient, env: Env,
                                            spec: MatrixSpec) -> None:
    resp = await client.get(f"{V3}/pushrules/", headers=env.alice.auth)
    body = await resp.json()
    spec.check_response("pushrules", "GET", "/pushrules/", 200, body)
    resp = await client.get(f"{V3}/pushrules/global/", headers=env.alice.auth)
    glob = await resp.json()
    spec.check_response("pushrules", "GET", "/pushrules/global/", 200, glob)
    assert glob == body["global"]


@pytest.mark.parametrize("method,path,status", [
    ("GET", "/pushrules", 404),
    ("GET", "/pushrules/global", 404),
    ("GET", "/pushrules/global/room", 404),
    ("GET", "/pushrules/not_a_scope/", 404),
    ("GET", "/pushrules/global/override/.m.rule.master/not_an_attr", 404),
    ("PUT", "/pushrules/", 405),
    ("PUT", "/pushrules/global/", 405),
    ("PUT", "/pushrules/not_a_scope/room/%23spam:example.com", 404),
])
async def test_other_paths_are_unrecognized(client: TestClient, env: Env, method: str,
                                            path: str, status: int) -> None:
    resp = await client.request(method, V3 + path, json={}, headers=env.alice.auth)
    await expect(resp, status, "M_UNRECOGNIZED")
