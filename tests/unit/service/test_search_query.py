"""The FTS5 query built from a /search term: every user token quoted, never a syntax error.

https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3search
"""

import sqlite3

import pytest

from edgehs.protocol.events import redaction_target
from edgehs.service.search_query import fts_query, searchable


@pytest.mark.parametrize(("term", "match", "highlights"), [
    ("martians and men", '"martians"* "and"* "men"*', ["martians", "and", "men"]),
    ('"tomato soup"', '"tomato soup"', ["tomato", "soup"]),
    ("soup -tomato", '"soup"* NOT "tomato"*', ["soup"]),
    ("-tomato soup", '"soup"*', ["soup"]),  # NOT needs a term before it
    ("tea or coffee", '"tea"* OR "coffee"*', ["tea", "coffee"]),
    ("or tea", '"tea"*', ["tea"]),
    ('say "hi', '"say"* "hi"', ["say", "hi"]),  # an unterminated phrase ends with the term
    ('a"b', '"a""b"*', ["a", "b"]),
    ("NOT AND NEAR", '"NOT"* "AND"* "NEAR"*', ["not", "and", "near"]),
    ("!!! ...", "", []),
    ("", "", []),
    ("Tea TEA tea", '"Tea"* "TEA"* "tea"*', ["tea"]),
])
def test_fts_query(term: str, match: str, highlights: list[str]) -> None:
    assert fts_query(term) == (match, highlights)


@pytest.mark.parametrize("term", ['"', "*", "(", "a:b", "^x", "NEAR(a b)", "a\0b", "- -",
                                  "x OR OR y", '""""', "\u00e9*", "a" * 5000])
def test_every_query_is_valid_fts5(term: str) -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE t USING fts5(key UNINDEXED, value)")
    conn.execute("INSERT INTO t (key, value) VALUES ('content.body', 'a b x y NEAR')")
    match, _ = fts_query(term)
    if match:
        conn.execute("SELECT rowid FROM t WHERE t MATCH ?", (match,)).fetchall()


def test_what_is_indexed() -> None:
    msg = {"type": "m.room.message", "content": {"body": "hi", "msgtype": "m.text"}}
    assert searchable(msg) == ("content.body", "hi")
    assert searchable({"type": "m.room.topic", "content": {"topic": "t"}}) == ("content.topic", "t")
    assert searchable({"type": "m.room.name", "content": {"name": "n"}}) == ("content.name", "n")
    assert searchable({"type": "m.room.message", "content": {"body": 5}}) is None
    assert searchable({"type": "m.room.name", "content": {"name": ""}}) is None
    assert searchable({"type": "m.room.encrypted", "content": {"body": "x"}}) is None
    assert redaction_target({"type": "m.room.redaction", "redacts": "$a"}) == "$a"
    assert redaction_target({"type": "m.room.redaction", "content": {"redacts": "$b"}}) == "$b"
    assert redaction_target({"type": "m.room.message", "redacts": "$a"}) is None
