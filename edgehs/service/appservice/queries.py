"""Requests from the homeserver to application services: ping, user and alias queries and
third-party network lookups.

https://spec.matrix.org/v1.19/application-service-api/#pinging
https://spec.matrix.org/v1.19/application-service-api/#querying
https://spec.matrix.org/v1.19/application-service-api/#third-party-networks

Every call is bounded by a timeout and by a response size. Apart from :meth:`ping`, whose
errors the spec names, a service that is down, slow, or answers nonsense is treated as "does
not know": the caller answers its client as if the service had not been asked, never with 500.
Requests carry ``Authorization: Bearer hs_token`` (v1.19) and ``?access_token=hs_token`` (for
services written against the older specs, as Synapse does). They go through the server's one
shared HTTP client (made and closed by ``HomeServer``).
"""

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any, Literal
from urllib.parse import quote

import aiohttp

from edgehs.errors import Codes, MatrixError
from edgehs.service import json_parse
from edgehs.service.appservice.registry import AppService, AppServiceRegistry
from edgehs.types import JsonDict

log = logging.getLogger(__name__)

APP_PREFIX = "/_matrix/app/v1"
TIMEOUT_S = 10.0
MAX_RESPONSE_BYTES = 1024 * 1024
MAX_ERROR_BODY_CHARS = 1000  # of a failed ping's body, echoed to the caller for debugging

ThirdPartyKind = Literal["user", "location"]
# The key that names the Matrix side of a third-party result.
MATRIX_KEY: dict[ThirdPartyKind, str] = {"user": "userid", "location": "alias"}


class ResponseTooLarge(Exception):
    pass


def instance_id(service: AppService, network_id: str) -> str:
    """The homeserver-wide id of one protocol instance (Synapse's ``{as_id}|{network_id}``)."""
    return f"{service.id}|{network_id}"


def _valid_protocol(info: object) -> bool:
    instances = info.get("instances") if isinstance(info, dict) else None
    return isinstance(instances, list) and all(
        isinstance(i, dict) and isinstance(i.get("network_id"), str) for i in instances
    )


def _valid_result(item: object, kind: ThirdPartyKind) -> bool:
    return (isinstance(item, dict) and isinstance(item.get(MATRIX_KEY[kind]), str)
            and isinstance(item.get("protocol"), str) and isinstance(item.get("fields"), dict))


class AppServiceQueries:
    def __init__(self, registry: AppServiceRegistry, http: aiohttp.ClientSession,
                 timeout_s: float = TIMEOUT_S) -> None:
        self.registry = registry
        self.http = http
        self.timeout_s = timeout_s

    # --- plumbing ---------------------------------------------------------------------------

    async def _request(
        self, service: AppService, method: str, path: str, *, body: JsonDict | None = None,
        params: Iterable[tuple[str, str]] = (), legacy_token: bool = True,
    ) -> tuple[int, bytes]:
        """(status, body) of one request; aiohttp.ClientError, TimeoutError or
        ResponseTooLarge when there is no usable answer."""
        assert service.url is not None
        query = list(params)
        if legacy_token:
            query.append(("access_token", service.hs_token))
        headers = {"Authorization": f"Bearer {service.hs_token}"}
        async with self.http.request(
            method, service.url.rstrip("/") + APP_PREFIX + path, json=body, params=query,
            headers=headers, timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            allow_redirects=False,
        ) as resp:
            if (resp.content_length or 0) > MAX_RESPONSE_BYTES:
                raise ResponseTooLarge(f"{resp.content_length} bytes")
            chunks: list[bytes] = []
            size = 0
            async for chunk in resp.content.iter_chunked(65536):
                size += len(chunk)
                if size > MAX_RESPONSE_BYTES:
                    raise ResponseTooLarge(f"over {MAX_RESPONSE_BYTES} bytes")
                chunks.append(chunk)
            return resp.status, b"".join(chunks)

    async def _get_json(self, service: AppService, path: str,
                        params: Iterable[tuple[str, str]] = ()) -> tuple[int, Any]:
        """(status, decoded JSON or None); (0, None) when the service could not be reached."""
        try:
            status, raw = await self._request(service, "GET", path, params=params)
        except (aiohttp.ClientError, TimeoutError, ResponseTooLarge, OSError) as exc:
            log.info("appservice %s: GET %s failed: %s: %s", service.id, path,
                     type(exc).__name__, exc)
            return 0, None
        try:
            return status, json_parse.loads(raw) if raw.strip() else None
        except (ValueError, UnicodeDecodeError):
            log.info("appservice %s: GET %s answered %d with invalid JSON", service.id, path,
                     status)
            return status, None

    # --- ping -------------------------------------------------------------------------------

    async def ping(self, service: AppService, transaction_id: str | None) -> int:
        """POST /_matrix/app/v1/ping; the round trip in milliseconds, or the spec's errors.

        https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv1appserviceappserviceidping"""
        if not service.url:
            raise MatrixError(400, Codes.URL_NOT_SET,
                              "Application service doesn't have a URL configured")
        body: JsonDict = {} if transaction_id is None else {"transaction_id": transaction_id}
        started = time.monotonic()
        try:
            status, raw = await self._request(service, "POST", "/ping", body=body,
                                              legacy_token=False)
        except TimeoutError as exc:
            raise MatrixError(504, Codes.CONNECTION_TIMEOUT,
                              "Connection to application service timed out") from exc
        except (aiohttp.ClientError, OSError, ResponseTooLarge) as exc:
            raise MatrixError(502, Codes.CONNECTION_FAILED,
                              f"Connection to application service failed: {exc}") from exc
        duration_ms = int((time.monotonic() - started) * 1000)
        if status != 200:
            text = raw.decode("utf-8", "replace")[:MAX_ERROR_BODY_CHARS]
            error = MatrixError(502, Codes.BAD_STATUS, f"Ping returned status {status}",
                                body=text)
            error.extra["status"] = status  # a keyword argument would clash with the HTTP status
            raise error
        return duration_ms

    # --- users and aliases ------------------------------------------------------------------

    async def query_alias(self, alias: str) -> bool:
        """Ask the services whose alias namespaces match; True once one answered 200, which
        means it has created the room and the alias (the caller looks it up again).

        https://spec.matrix.org/v1.19/application-service-api/#get_matrixappv1roomsroomalias"""
        for service in self.registry.alias_owners(alias):
            status, _ = await self._get_json(service, "/rooms/" + quote(alias, safe=""))
            if status == 200:
                return True
        return False

    async def query_user(self, user_id: str) -> bool:
        """Ask the services whose user namespaces match; True once one answered 200, which
        means it has registered the user.

        https://spec.matrix.org/v1.19/application-service-api/#get_matrixappv1usersuserid"""
        for service in self.registry.user_owners(user_id):
            status, _ = await self._get_json(service, "/users/" + quote(user_id, safe=""))
            if status == 200:
                return True
        return False

    # --- third-party networks ---------------------------------------------------------------

    def _protocol_services(self, protocol: str) -> list[AppService]:
        return [s for s in self.registry.all() if s.url and protocol in s.protocols]

    def known_protocol(self, protocol: str) -> bool:
        return bool(self._protocol_services(protocol))

    async def protocols(self, only: str | None = None) -> dict[str, JsonDict]:
        """Every protocol's metadata (or just ``only``'s): the first service's answer, with
        the ``instances`` of every service that serves the protocol, each given an
        ``instance_id``. Protocols no service could describe are left out.

        https://spec.matrix.org/v1.19/application-service-api/#get_matrixappv1thirdpartyprotocolprotocol"""
        merged: dict[str, JsonDict] = {}
        for service in self.registry.all():
            if not service.url:
                continue
            for protocol in service.protocols:
                if only is not None and protocol != only:
                    continue
                status, info = await self._get_json(
                    service, "/thirdparty/protocol/" + quote(protocol, safe="")
                )
                if status != 200 or not _valid_protocol(info):
                    continue
                instances = [{**i, "instance_id": instance_id(service, i["network_id"])}
                             for i in info["instances"]]
                if protocol in merged:
                    merged[protocol]["instances"].extend(instances)
                else:
                    merged[protocol] = {**info, "instances": instances}
        return merged

    async def lookup(self, kind: ThirdPartyKind, protocol: str,
                     fields: Mapping[str, str] | Iterable[tuple[str, str]]) -> list[JsonDict]:
        """Third-party users or locations matching ``fields``, from every service serving
        ``protocol`` (results merged in registration order).

        https://spec.matrix.org/v1.19/application-service-api/#get_matrixappv1thirdpartylocationprotocol"""
        params = list(fields.items()) if isinstance(fields, Mapping) else list(fields)
        path = f"/thirdparty/{kind}/{quote(protocol, safe='')}"
        return await self._collect(self._protocol_services(protocol), path, params, kind)

    async def reverse_lookup(self, kind: ThirdPartyKind, matrix_id: str) -> list[JsonDict]:
        """The third-party users of a Matrix user id (``kind="user"``) or the locations of a
        room alias (``kind="location"``), from the services with protocols whose namespaces
        cover that id.

        https://spec.matrix.org/v1.19/application-service-api/#get_matrixappv1thirdpartylocation"""
        services = [
            s for s in self.registry.all() if s.url and s.protocols and (
                s.owns_user(matrix_id) if kind == "user" else s.owns_alias(matrix_id))
        ]
        params = [(MATRIX_KEY[kind], matrix_id)]
        return await self._collect(services, f"/thirdparty/{kind}", params, kind)

    async def _collect(self, services: list[AppService], path: str,
                       params: list[tuple[str, str]], kind: ThirdPartyKind) -> list[JsonDict]:
        results: list[JsonDict] = []
        for service in services:
            status, body = await self._get_json(service, path, params)
            if status == 200 and isinstance(body, list):
                results += [item for item in body if _valid_result(item, kind)]
        return results
