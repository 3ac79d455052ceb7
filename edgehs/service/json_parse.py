"""Parsing JSON that arrives from outside (request bodies, query parameters, answers of
application services and push gateways) into values every later step can handle.

https://spec.matrix.org/v1.19/appendices/#canonical-json

Two things the standard library's ``json.loads`` lets through are refused here:

1. ``NaN``, ``Infinity`` and ``-Infinity``, which are not JSON (RFC 8259 section 6).
2. Nesting deeper than :data:`MAX_DEPTH` objects and arrays. The spec sets no depth limit,
   but every walker of a parsed value (canonical JSON encoding, redaction, ``deepcopy``, the
   decoder itself) recurses once or more per level, so an unbounded depth ends in a
   ``RecursionError``. 128 is serde_json's default limit, so Rust homeservers and clients
   refuse deeper documents too.
"""

import json
from typing import Any

MAX_DEPTH = 128


class JsonNestingError(ValueError):
    """The document nests objects and arrays deeper than :data:`MAX_DEPTH`."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads(raw: str | bytes) -> Any:
    """Decode ``raw`` (UTF-8 when bytes). Raises ``JsonNestingError`` when it nests too
    deeply, ``ValueError`` (``UnicodeDecodeError`` included) when it is not JSON."""
    try:
        value = json.loads(raw, parse_constant=_reject_constant)
    except RecursionError as exc:  # the decoder's own guard, far past MAX_DEPTH
        raise JsonNestingError(f"nested deeper than {MAX_DEPTH} levels") from exc
    check_depth(value)
    return value


def check_depth(value: object, limit: int = MAX_DEPTH) -> None:
    """Raise ``JsonNestingError`` when ``value`` nests more than ``limit`` containers.
    Iterative, so it is safe on any depth."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth > limit:
            raise JsonNestingError(f"nested deeper than {limit} levels")
        stack.extend((child, depth + 1) for child in children
                     if isinstance(child, dict | list | tuple))
