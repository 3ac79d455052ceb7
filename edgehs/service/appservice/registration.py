"""Application service registrations: parsing, validation, loading, run-time additions.

https://spec.matrix.org/v1.19/application-service-api/#registration

Files use Synapse's YAML format and are read the way Synapse reads them, so a bridge's
``registration.yaml`` loads unchanged: unknown keys are kept in ``AppService.extra`` and
otherwise ignored; ``url: null`` (or absent, or ``""``, as mautrix-go writes for double-puppet
registrations) means "no pushes"; a trailing ``/`` on ``url`` is dropped; Synapse's unstable
``de.sorunome.msc2409.push_ephemeral`` is accepted for ``receive_ephemeral``. Unlike Synapse,
every malformed value is refused (Synapse silently turns a non-boolean ``rate_limited`` into
``true``) with a message naming the file and the field.
"""

import asyncio
import logging
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from edgehs.config import ConfigError
from edgehs.errors import Codes, MatrixError
from edgehs.service.appservice.registry import AppService, AppServiceRegistry, Namespace
from edgehs.service.users import HISTORICAL_LOCALPART_RE
from edgehs.store.appservices import AppServiceStore
from edgehs.store.users import UserStore
from edgehs.types import JsonDict

log = logging.getLogger(__name__)

MAX_USER_ID_LENGTH = 255
NAMESPACE_KINDS = ("users", "aliases", "rooms")
EPHEMERAL_ALIAS = "de.sorunome.msc2409.push_ephemeral"
DATABASE = "database"  # AppService.source of the registrations stored in the database
KNOWN_KEYS = frozenset({
    "id", "url", "as_token", "hs_token", "sender_localpart", "namespaces", "rate_limited",
    "protocols", "receive_ephemeral", EPHEMERAL_ALIAS,
})


class RegistrationError(ConfigError):
    """A registration is invalid; ``field`` is its dotted path (``namespaces.users[0].regex``)."""

    def __init__(self, where: str, field: str, reason: str) -> None:
        super().__init__(f"{where}: {field}: {reason}")
        self.where = where
        self.field = field
        self.reason = reason


def _token(raw: dict[Any, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise RegistrationError(where, key, f"must be a non-empty string, not {value!r}")
    if any(c.isspace() for c in value):
        raise RegistrationError(where, key, "must not contain spaces")
    return value


def _bool(raw: dict[Any, Any], key: str, where: str, default: bool) -> bool:
    value = raw.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise RegistrationError(where, key, f"must be true or false, not {value!r}")
    return value


def _url(raw: dict[Any, Any], where: str) -> str | None:
    value = raw.get("url")
    if value is None or value == "":
        return None
    if isinstance(value, str):
        parts = urlsplit(value)
        if parts.scheme in ("http", "https") and parts.hostname:
            return value.rstrip("/")
    raise RegistrationError(where, "url", f"must be an http(s) URL or null, not {value!r}")


def _namespaces(raw: dict[Any, Any], where: str) -> dict[str, tuple[Namespace, ...]]:
    section = raw.get("namespaces")
    if not isinstance(section, dict):
        raise RegistrationError(where, "namespaces",
                                f"must be a mapping with users, aliases and/or rooms, "
                                f"not {section!r}")
    out: dict[str, tuple[Namespace, ...]] = {}
    for kind in NAMESPACE_KINDS:
        entries = section.get(kind)
        if entries is None:
            out[kind] = ()
            continue
        if not isinstance(entries, list):
            raise RegistrationError(where, f"namespaces.{kind}",
                                    f"must be a list of {{regex, exclusive}}, not {entries!r}")
        out[kind] = tuple(_namespace(entry, f"namespaces.{kind}[{i}]", where)
                          for i, entry in enumerate(entries))
    return out


def _namespace(entry: object, path: str, where: str) -> Namespace:
    if not isinstance(entry, dict):
        raise RegistrationError(where, path,
                                f"must be a mapping with regex and exclusive, not {entry!r}")
    regex = entry.get("regex")
    if not isinstance(regex, str) or not regex:
        raise RegistrationError(where, f"{path}.regex",
                                f"must be a non-empty string, not {regex!r}")
    try:
        compiled = re.compile(regex)
    except re.error as exc:
        raise RegistrationError(where, f"{path}.regex",
                                f"invalid regex {regex!r}: {exc}") from exc
    exclusive = entry.get("exclusive")
    if not isinstance(exclusive, bool):
        raise RegistrationError(where, f"{path}.exclusive",
                                f"must be true or false, not {exclusive!r}")
    return Namespace(compiled, exclusive)


def _protocols(raw: dict[Any, Any], where: str) -> tuple[str, ...]:
    value = raw.get("protocols")
    if value is None:
        return ()
    if not isinstance(value, list):
        raise RegistrationError(where, "protocols", f"must be a list of strings, not {value!r}")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise RegistrationError(where, f"protocols[{i}]",
                                    f"must be a non-empty string, not {item!r}")
    return tuple(value)


def parse_registration(raw: object, where: str, server_name: str) -> AppService:
    """One registration (already read from YAML or JSON) as an AppService.

    ``where`` names its origin (a file path, "request body", ...) in every error message.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: an application service registration must be a mapping, "
                          f"not {type(raw).__name__}")
    as_id = raw.get("id")
    if not isinstance(as_id, str) or not as_id.strip():
        raise RegistrationError(where, "id", f"must be a non-empty string, not {as_id!r}")
    as_token = _token(raw, "as_token", where)
    hs_token = _token(raw, "hs_token", where)
    if as_token == hs_token:
        raise RegistrationError(where, "hs_token", "must differ from as_token")
    # The historical user id grammar (printable ASCII but ':'): mautrix-go bridges write random
    # mixed-case sender localparts, which Synapse accepts.
    localpart = raw.get("sender_localpart")
    if not isinstance(localpart, str) or not HISTORICAL_LOCALPART_RE.fullmatch(localpart):
        raise RegistrationError(where, "sender_localpart",
                                f"must be a user id localpart (printable ASCII, no ':' or "
                                f"spaces), not {localpart!r}")
    if len(f"@{localpart}:{server_name}") > MAX_USER_ID_LENGTH:
        raise RegistrationError(where, "sender_localpart", "makes a user id over 255 characters")
    url = _url(raw, where)
    namespaces = _namespaces(raw, where)
    rate_limited = _bool(raw, "rate_limited", where, True)
    protocols = _protocols(raw, where)
    legacy_ephemeral = _bool(raw, EPHEMERAL_ALIAS, where, False)
    receive_ephemeral = _bool(raw, "receive_ephemeral", where, legacy_ephemeral)
    extra = {str(k): v for k, v in raw.items() if k not in KNOWN_KEYS}
    return AppService(
        id=as_id, url=url, as_token=as_token, hs_token=hs_token, sender_localpart=localpart,
        server_name=server_name, users=namespaces["users"], aliases=namespaces["aliases"],
        rooms=namespaces["rooms"], rate_limited=rate_limited, protocols=protocols,
        receive_ephemeral=receive_ephemeral, source=where, extra=extra,
    )


def read_registration_file(path: Path, server_name: str) -> AppService:
    where = str(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{where}: not a text file: {exc}") from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: an application service registration must be a YAML "
                          f"mapping, not {type(raw).__name__}")
    return parse_registration(raw, where, server_name)


def check_unique(services: Iterable[AppService]) -> None:
    """ConfigError naming both origins if two registrations share an id or an as_token."""
    by_id: dict[str, AppService] = {}
    by_token: dict[str, AppService] = {}
    for service in services:
        if service.id in by_id:
            raise ConfigError(f"{service.source}: id: {service.id!r} is already used by "
                              f"{by_id[service.id].source}")
        if service.as_token in by_token:
            raise ConfigError(f"{service.source}: as_token: the same as_token is used by "
                              f"{by_token[service.as_token].source}")
        by_id[service.id] = by_token[service.as_token] = service


def load_registrations(paths: Iterable[Path], server_name: str) -> list[AppService]:
    """Every registration file, validated; ConfigError naming the file and field otherwise."""
    services = [read_registration_file(path, server_name) for path in paths]
    check_unique(services)
    for service in services:
        if service.url is None:
            log.info("%s: url is null: application service %r receives no events or queries",
                     service.source, service.id)
    return services


class AppServiceRegistrations:
    """Builds the registry at start-up (files + stored rows) and adds registrations at run time
    through the legacy 2015 ``POST /_matrix/appservice/v1/register``."""

    def __init__(self, server_name: str, store: AppServiceStore, users: UserStore) -> None:
        self.server_name = server_name
        self.store = store
        self.users = users
        self.registry = AppServiceRegistry()
        self._lock = asyncio.Lock()

    async def load(self, files: Iterable[Path]) -> AppServiceRegistry:
        """The files (all must be valid) plus the stored registrations (a bad or clashing row is
        logged and skipped: the files win)."""
        services = load_registrations(files, self.server_name)
        registry = AppServiceRegistry(services)
        for as_id, raw in await self.store.get_all():
            where = f"database (appservices row {as_id!r})"
            try:
                service = parse_registration(raw, where, self.server_name)
            except ConfigError as exc:
                log.error("skipping a stored application service: %s", exc)
                continue
            service = replace(service, source=DATABASE)
            clash = registry.by_id(service.id) or registry.by_token(service.as_token)
            if clash is not None:
                log.warning("%s: skipped: its id or as_token is also used by %s", where,
                            clash.source)
                continue
            registry.add(service)
        self.registry = registry
        await self.ensure_senders(registry.all())
        return registry

    async def ensure_senders(self, services: Iterable[AppService]) -> None:
        """Create each service's sender user (``@sender_localpart``) if it does not exist, so
        the service can act as it at once: its profile answers, it can join and create rooms.
        Only the users table is written (no room events), so a command-line process may do it
        too. https://spec.matrix.org/v1.19/application-service-api/#registration"""
        for service in services:
            if await self.users.get_user(service.sender) is not None:
                continue
            if await self.users.create_user(service.sender, None, False, int(time.time() * 1000),
                                            service.sender_localpart, service.id):
                log.info("created %s, the sender of application service %r", service.sender,
                         service.id)

    async def require_admin(self, user_id: str) -> None:
        user = await self.users.get_user(user_id)
        if user is None or not user.get("admin"):
            raise MatrixError(403, Codes.FORBIDDEN,
                              "Only server admins may register application services")

    async def register_legacy(self, body: JsonDict) -> AppService:
        """Add (or, for a known as_token, update) a registration from a 2015-style body.

        The body has ``url``, ``as_token`` and ``namespaces``, and may have any other
        registration field. The server picks ``hs_token``; ``id`` and ``sender_localpart``
        default to ``legacy_`` + 8 random hex digits. Re-registering with the as_token of a
        stored registration keeps its id, hs_token and sender_localpart and replaces the rest,
        so an old AS that registers at every start keeps working.
        """
        for key in ("as_token", "url"):
            if key not in body:
                raise MatrixError(400, Codes.MISSING_PARAM, f"Missing parameter: {key}")
        if "hs_token" in body:
            raise MatrixError(400, Codes.BAD_JSON, "hs_token: chosen by the homeserver; leave "
                                                   "it out")
        async with self._lock:
            raw = await self._complete(body)
            try:
                service = parse_registration(raw, "request body", self.server_name)
            except RegistrationError as exc:
                raise MatrixError(400, Codes.BAD_JSON, f"{exc.field}: {exc.reason}") from exc
            except ConfigError as exc:
                raise MatrixError(400, Codes.BAD_JSON, str(exc)) from exc
            service = replace(service, source=DATABASE)
            await self.store.save(service.id, service.as_token, raw, int(time.time() * 1000))
            self.registry.add(service)
            await self.ensure_senders([service])
        log.info("application service %r registered at run time (url %s)", service.id,
                 service.url)
        return service

    async def _complete(self, body: JsonDict) -> JsonDict:
        """The body with the server-chosen fields filled in (or kept from the stored one)."""
        raw = dict(body)
        if raw.get("namespaces") is None:  # optional in 2015
            raw["namespaces"] = {}
        token = body.get("as_token")
        existing = self.registry.by_token(token) if isinstance(token, str) else None
        if existing is not None:
            if existing.source != DATABASE:
                raise MatrixError(400, Codes.BAD_JSON, "as_token: already used by an "
                                                       "application service registered in a file")
            for key, value in (("id", existing.id),
                               ("sender_localpart", existing.sender_localpart)):
                if body.get(key, value) != value:
                    raise MatrixError(400, Codes.BAD_JSON,
                                      f"{key}: this as_token is registered with {key} {value!r}")
            return {**raw, "id": existing.id, "sender_localpart": existing.sender_localpart,
                    "hs_token": existing.hs_token}
        generated = "legacy_" + secrets.token_hex(4)
        raw.setdefault("id", generated)
        raw.setdefault("sender_localpart", generated)
        if isinstance(raw["id"], str) and self.registry.by_id(raw["id"]) is not None:
            raise MatrixError(400, Codes.BAD_JSON, f"id: {raw['id']!r} is already registered")
        raw["hs_token"] = secrets.token_urlsafe(32)
        return raw
