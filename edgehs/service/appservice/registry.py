"""Application service registrations and namespace matching.

https://spec.matrix.org/v1.19/application-service-api/#registration

Registration files use Synapse's YAML format. Namespace regexes are matched from the start of
the string (Python ``re.match``), as Synapse does, so registrations written for Synapse behave
the same here.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from edgehs.errors import Codes, MatrixError


@dataclass(frozen=True)
class Namespace:
    regex: re.Pattern[str]
    exclusive: bool

    def matches(self, value: str) -> bool:
        return self.regex.match(value) is not None


@dataclass(frozen=True)
class AppService:
    id: str
    url: str | None  # None: the AS receives no pushes
    as_token: str
    hs_token: str
    sender_localpart: str
    server_name: str
    users: tuple[Namespace, ...] = ()
    aliases: tuple[Namespace, ...] = ()
    rooms: tuple[Namespace, ...] = ()
    rate_limited: bool = True
    protocols: tuple[str, ...] = ()
    receive_ephemeral: bool = False
    source: str = ""  # the file it came from, or "database"
    extra: dict[str, object] = field(default_factory=dict, compare=False)

    @property
    def sender(self) -> str:
        return f"@{self.sender_localpart}:{self.server_name}"

    def owns_user(self, user_id: str) -> bool:
        """The AS may act as this user: its sender or a user in its namespaces."""
        return user_id == self.sender or any(ns.matches(user_id) for ns in self.users)

    def exclusive_user(self, user_id: str) -> bool:
        return user_id == self.sender or any(
            ns.exclusive and ns.matches(user_id) for ns in self.users
        )

    def owns_alias(self, alias: str) -> bool:
        return any(ns.matches(alias) for ns in self.aliases)

    def exclusive_alias(self, alias: str) -> bool:
        return any(ns.exclusive and ns.matches(alias) for ns in self.aliases)

    def owns_room(self, room_id: str) -> bool:
        return any(ns.matches(room_id) for ns in self.rooms)


class AppServiceRegistry:
    """Every registered AS, by id and by as_token."""

    def __init__(self, services: Iterable[AppService] = ()) -> None:
        self._by_id: dict[str, AppService] = {}
        self._by_token: dict[str, AppService] = {}
        for service in services:
            self.add(service)

    def add(self, service: AppService) -> None:
        """Register ``service``, replacing one with the same id (and its old token)."""
        old = self._by_id.get(service.id)
        if old is not None:
            self._by_token.pop(old.as_token, None)
        self._by_id[service.id] = service
        self._by_token[service.as_token] = service

    def all(self) -> list[AppService]:
        return list(self._by_id.values())

    def by_id(self, as_id: str) -> AppService | None:
        return self._by_id.get(as_id)

    def by_token(self, as_token: str) -> AppService | None:
        return self._by_token.get(as_token)

    def exclusive_user_owner(self, user_id: str) -> AppService | None:
        """The AS that claims ``user_id`` exclusively, if any."""
        return next((s for s in self._by_id.values() if s.exclusive_user(user_id)), None)

    def exclusive_alias_owner(self, alias: str) -> AppService | None:
        return next((s for s in self._by_id.values() if s.exclusive_alias(alias)), None)

    def acting(self, user_id: str, appservice_id: str | None) -> AppService | None:
        """The service a request acts for: the one whose ``as_token`` it carries
        (``appservice_id``, also when it masquerades as one of its users), or the one whose
        sender user it comes from with an access token of its own (as Synapse counts it)."""
        if appservice_id is not None:
            return self._by_id.get(appservice_id)
        return next((s for s in self._by_id.values() if s.sender == user_id), None)

    def check_alias_claim(self, alias: str, user_id: str, appservice_id: str | None) -> None:
        """400 M_EXCLUSIVE when ``alias`` lies in the exclusive alias namespace of a service
        the request does not act for (see :meth:`acting`).

        "An exclusive namespace prevents humans and other application services from
        creating/deleting entities in that namespace" (spec, Registration).
        https://spec.matrix.org/v1.19/application-service-api/#registration"""
        owner = self.exclusive_alias_owner(alias)
        if owner is not None and owner is not self.acting(user_id, appservice_id):
            raise MatrixError(400, Codes.EXCLUSIVE,
                              f"{alias} is reserved by an application service")

    def alias_owners(self, alias: str) -> list[AppService]:
        return [s for s in self._by_id.values() if s.owns_alias(alias) and s.url]

    def user_owners(self, user_id: str) -> list[AppService]:
        return [s for s in self._by_id.values() if s.owns_user(user_id) and s.url]
