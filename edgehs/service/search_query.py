"""What /search is asked: the request body, the FTS5 query built from the search term, and
the index rows written with each event.

https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3search

The search term is never handed to FTS5 as it is: every word and every quoted phrase becomes a
quoted FTS5 string (``"`` doubled inside), so no user input can produce an FTS5 syntax error.
Like Synapse on SQLite, words match as prefixes (``"mart"*`` finds "martians"), ``"quoted
phrases"`` match exactly, ``-word`` excludes and ``or`` between two terms means either.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiosqlite

from edgehs.errors import Codes, MatrixError
from edgehs.protocol.canonical_json import check_canonical_json
from edgehs.protocol.events import redaction_target
from edgehs.service.messages import RoomEventFilter
from edgehs.store.search import index_event, unindex_event
from edgehs.types import JsonDict, StateMap

# Event type -> (search key, content field): what the index holds.
INDEXED = {
    "m.room.message": ("content.body", "body"),
    "m.room.name": ("content.name", "name"),
    "m.room.topic": ("content.topic", "topic"),
}
ALL_KEYS = ("content.body", "content.name", "content.topic")
DEFAULT_LIMIT = 10
MAX_LIMIT = 100
DEFAULT_CONTEXT = 5
MAX_CONTEXT = 50
# Terms beyond this many are ignored: the query stays small whatever the client sends.
MAX_TERMS = 32

TOKEN_RE = re.compile(r'(-?)"([^"]*)"?|(\S+)')
WORD_RE = re.compile(r"\w+")


def _quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def fts_query(term: str) -> tuple[str, list[str]]:
    """The FTS5 MATCH string for ``term`` ("" when nothing searchable is left) and the words
    to highlight."""
    parts: list[str] = []
    highlights: list[str] = []
    want_or = False
    # SQLite reads the query as a C string: a NUL would end it inside a quoted token.
    term = term.replace("\0", " ")
    for m in list(TOKEN_RE.finditer(term))[:MAX_TERMS]:
        negated, phrase, word = m.group(1) == "-", m.group(2), m.group(3)
        if word is not None and word.lower() == "or":
            want_or = bool(parts)  # only between two terms
            continue
        if word is not None and word.startswith("-") and len(word) > 1:
            negated, word = True, word[1:]
        text = phrase if phrase is not None else (word or "")
        if not WORD_RE.search(text):
            continue  # punctuation alone matches nothing; leave it out
        expr = _quote(text) if phrase is not None else _quote(text) + "*"
        if negated:
            if parts:  # FTS5's NOT is binary: it needs a term before it
                parts.append("NOT " + expr)
            want_or = False
            continue
        parts.append(("OR " if want_or else "") + expr)
        want_or = False
        highlights += [w.lower() for w in WORD_RE.findall(text)]
    return " ".join(parts), list(dict.fromkeys(highlights))


# --- the request body -------------------------------------------------------------------------

def _obj(value: Any, name: str) -> JsonDict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MatrixError(400, Codes.BAD_JSON, f"{name} must be an object")
    return value


def _int(section: JsonDict, key: str, default: int, maximum: int) -> int:
    value = section.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise MatrixError(400, Codes.BAD_JSON, f"event_context.{key} must be an integer")
    if value < 0:
        raise MatrixError(400, Codes.INVALID_PARAM, f"event_context.{key} must not be negative")
    return min(value, maximum)


@dataclass(frozen=True)
class SearchRequest:
    """``search_categories.room_events`` of a /search body."""

    term: str
    keys: tuple[str, ...] = ALL_KEYS
    flt: RoomEventFilter = field(default_factory=RoomEventFilter)
    recent: bool = False
    context: tuple[int, int] | None = None  # (before_limit, after_limit)
    include_profile: bool = False
    include_state: bool = False
    group_by: tuple[str, ...] = ()

    @property
    def limit(self) -> int:
        limit = self.flt.events.limit
        return DEFAULT_LIMIT if limit is None else max(1, min(limit, MAX_LIMIT))

    @classmethod
    def parse(cls, body: JsonDict) -> "SearchRequest":
        check_canonical_json(body)  # no lone surrogates: SQLite takes UTF-8 only
        if "search_categories" not in body:
            raise MatrixError(400, Codes.MISSING_PARAM, "Missing parameter: search_categories")
        categories = _obj(body["search_categories"], "search_categories")
        unknown = sorted(set(categories) - {"room_events"})
        if unknown or "room_events" not in categories:
            raise MatrixError(400, Codes.INVALID_PARAM,
                              f"Unknown search categories {unknown}: only room_events is "
                              "supported" if unknown else "No search category: room_events")
        section = _obj(categories["room_events"], "room_events")
        term = section.get("search_term")
        if term is None:
            raise MatrixError(400, Codes.MISSING_PARAM, "Missing parameter: search_term")
        if not isinstance(term, str):
            raise MatrixError(400, Codes.BAD_JSON, "search_term must be a string")
        keys = section.get("keys", list(ALL_KEYS))
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise MatrixError(400, Codes.BAD_JSON, "keys must be a list of strings")
        if bad := [k for k in keys if k not in ALL_KEYS]:
            raise MatrixError(400, Codes.INVALID_PARAM, f"Unknown search keys {bad}")
        order_by = section.get("order_by", "rank")
        if not isinstance(order_by, str):
            raise MatrixError(400, Codes.BAD_JSON, "order_by must be a string")
        if order_by not in ("rank", "recent"):
            raise MatrixError(400, Codes.INVALID_PARAM, "order_by must be rank or recent")
        context: tuple[int, int] | None = None
        include_profile = False
        if "event_context" in section and section["event_context"] is not None:
            ctx = _obj(section["event_context"], "event_context")
            context = (_int(ctx, "before_limit", DEFAULT_CONTEXT, MAX_CONTEXT),
                       _int(ctx, "after_limit", DEFAULT_CONTEXT, MAX_CONTEXT))
            include_profile = ctx.get("include_profile", False)
            if not isinstance(include_profile, bool):
                raise MatrixError(400, Codes.BAD_JSON,
                                  "event_context.include_profile must be a boolean")
        include_state = section.get("include_state", False)
        if not isinstance(include_state, bool):
            raise MatrixError(400, Codes.BAD_JSON, "include_state must be a boolean")
        return cls(term, tuple(dict.fromkeys(keys)), RoomEventFilter.parse(section.get("filter")),
                   order_by == "recent", context, include_profile, include_state,
                   _group_by(section.get("groupings")))


def _group_by(raw: Any) -> tuple[str, ...]:
    groups = _obj(raw, "groupings").get("group_by", [])
    if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
        raise MatrixError(400, Codes.BAD_JSON, "groupings.group_by must be a list of objects")
    keys = [g.get("key") for g in groups]
    if bad := [k for k in keys if k not in ("room_id", "sender")]:
        raise MatrixError(400, Codes.INVALID_PARAM, f"Unknown grouping keys {bad}")
    return tuple(dict.fromkeys(str(k) for k in keys))


# --- the index, written in each event's transaction -------------------------------------------

def searchable(pdu: JsonDict) -> tuple[str, str] | None:
    """(search key, text) of an event the index holds, or None."""
    entry = INDEXED.get(str(pdu.get("type")))
    content = pdu.get("content")
    if entry is None or not isinstance(content, dict):
        return None
    value = content.get(entry[1])
    return (entry[0], value) if isinstance(value, str) and value else None


@dataclass(frozen=True)
class SearchRows:
    """The index rows of one batch of events (the write path's ``EventRows``)."""

    texts: dict[str, tuple[str, str]]  # event_id -> (key, text)
    redacts: dict[str, str]  # redaction event_id -> redacted event_id

    @property
    def destinations(self) -> frozenset[str]:
        return frozenset()

    async def write(self, conn: aiosqlite.Connection, event_id: str, pos: int) -> None:
        if (text := self.texts.get(event_id)) is not None:
            await index_event(conn, pos, *text)
        if (target := self.redacts.get(event_id)) is not None:
            await unindex_event(conn, target)


async def search_rows(room_id: str, pending: Sequence[tuple[JsonDict, StateMap, StateMap]]
                      ) -> SearchRows | None:
    """The write path's ``event_rows`` hook: index rows for the searchable events of the
    batch, and the deletions its redactions cause."""
    texts = {str(p["event_id"]): t for p, _, _ in pending if (t := searchable(p)) is not None}
    redacts = {str(p["event_id"]): r for p, _, _ in pending
               if (r := redaction_target(p)) is not None}
    return SearchRows(texts, redacts) if texts or redacts else None
