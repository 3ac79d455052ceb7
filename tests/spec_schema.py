"""Check edgehs responses against the Matrix spec v1.19 OpenAPI definitions.

The definitions live in ``shared/matrix-spec/data`` beside the repository (CI clones the repo
into another folder with a copy of ``shared/`` beside it). They are OpenAPI 3.1, whose schemas
are JSON Schema 2020-12: each YAML file is registered with ``referencing`` under its
``file://`` URI, so relative ``$ref``s (``definitions/...yaml``, ``../../event-schemas/...``)
and in-document ``#/...`` pointers resolve the way the spec's own tooling resolves them, and a
response body is validated with ``jsonschema.Draft202012Validator``.

Usage (tests import this as ``spec_schema``; ``tests/`` is on ``sys.path`` because it holds the
root ``conftest.py``)::

    spec = MatrixSpec.load()
    spec.check_response("room_send", "PUT", "/rooms/{roomId}/send/{eventType}/{txnId}",
                        resp.status, body)
    spec.check_event(event)           # client format + event-schemas/schema/<type>.yaml
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urldefrag, urljoin, urlparse

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

# Maps whose keys are names chosen by the spec, not schema keywords: never stripped.
NAME_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions", "paths",
                       "responses", "schemas", "parameters", "headers", "content",
                       "requestBodies", "securitySchemes", "variables"})
# Documentation-only keywords, dropped so that the schemas are plain JSON Schema.
DOC_KEYS = frozenset({"example", "examples"})
ERROR_SCHEMA = "api/client-server/definitions/errors/error.yaml"
# Top-level response keys that the spec's prose adds where the OpenAPI data does not list them:
# (api file, method, path) -> keys. device_unused_fallback_key_types: "End-to-end encryption,
# Extensions to /sync" (https://spec.matrix.org/v1.19/client-server-api/#e2e-extensions-to-sync).
PROSE_KEYS = {("sync", "GET", "/sync"): frozenset({"device_unused_fallback_key_types"})}
ENV_VAR = "EDGEHS_SPEC_DATA"


class SpecError(AssertionError):
    """A response or event does not match the spec (or the spec has no such operation)."""


def find_spec_data(start: Path | None = None) -> Path:
    """``shared/matrix-spec/data`` beside the repository holding this file.

    Walks up from this file to the repository root (the folder with ``pyproject.toml``) and
    looks in ``<root>/../shared`` and ``<root>/shared``; ``$EDGEHS_SPEC_DATA`` overrides."""
    override = os.environ.get(ENV_VAR)
    if override:
        path = Path(override)
        if (path / "api" / "client-server").is_dir():
            return path
        raise FileNotFoundError(f"${ENV_VAR}={override} has no api/client-server folder")
    here = (start or Path(__file__)).resolve()
    tried: list[Path] = []
    for parent in here.parents:
        if not (parent / "pyproject.toml").exists():
            continue
        for candidate in (parent.parent / "shared", parent / "shared"):
            data = candidate / "matrix-spec" / "data"
            tried.append(data)
            if (data / "api" / "client-server").is_dir():
                return data
        break
    raise FileNotFoundError(
        "The Matrix spec definitions were not found; expected shared/matrix-spec/data beside "
        f"the repository (tried: {', '.join(map(str, tried)) or 'no repository root found'}). "
        f"Copy shared/ next to the checkout or set ${ENV_VAR}."
    )


def _clean(node: Any, parent: str | None = None) -> Any:
    """YAML -> plain JSON Schema: string keys everywhere (YAML reads ``200:`` as an int),
    without ``example(s)`` and ``x-*`` documentation keys outside name maps."""
    if isinstance(node, dict):
        keep_all = parent in NAME_MAPS
        return {
            str(k): _clean(v, str(k)) for k, v in node.items()
            if keep_all or not (str(k) in DOC_KEYS or str(k).startswith("x-"))
        }
    if isinstance(node, list):
        return [_clean(v, None) for v in node]
    return node


def _child(uri: str, *segments: str) -> str:
    """``uri`` extended by JSON pointer segments (escaped)."""
    base, _, fragment = uri.partition("#")
    escaped = [s.replace("~", "~0").replace("/", "~1") for s in segments]
    return f"{base}#{fragment.rstrip('/')}/" + "/".join(escaped)


@dataclass
class MatrixSpec:
    """The spec's definitions, loaded lazily and cached per instance."""

    data: Path
    _docs: dict[str, Any] = field(default_factory=dict)
    _registry: Registry = field(init=False)

    def __post_init__(self) -> None:
        self._registry = Registry(retrieve=self._retrieve)  # type: ignore[call-arg]

    @classmethod
    def load(cls) -> MatrixSpec:
        return cls(find_spec_data())

    # --- documents and references ----------------------------------------------------------

    def uri(self, relative: str) -> str:
        return (self.data / relative).resolve().as_uri()

    def _document(self, uri: str) -> Any:
        url = urldefrag(uri).url
        if url not in self._docs:
            path = Path(unquote(urlparse(url).path))
            if not path.is_file():
                raise SpecError(f"spec file {path} does not exist")
            self._docs[url] = _clean(yaml.safe_load(path.read_text()))
        return self._docs[url]

    def _retrieve(self, uri: str) -> Resource[Any]:
        return Resource.from_contents(self._document(uri), default_specification=DRAFT202012)

    def _lookup(self, uri: str) -> Any:
        """The node at ``uri`` (file URI plus optional JSON pointer fragment)."""
        url, fragment = urldefrag(uri)
        node = self._document(url)
        for raw in [s for s in fragment.split("/") if s]:
            key = unquote(raw).replace("~1", "/").replace("~0", "~")
            node = node[int(key)] if isinstance(node, list) else node[key]
        return node

    def _follow(self, uri: str) -> tuple[str, Any]:
        """Follow ``$ref`` chains of non-schema objects (responses): (final uri, node)."""
        node = self._lookup(uri)
        seen = {uri}
        while isinstance(node, dict) and "$ref" in node:
            uri = urljoin(uri, node["$ref"])
            if uri in seen:
                raise SpecError(f"$ref loop at {uri}")
            seen.add(uri)
            node = self._lookup(uri)
        return uri, node

    def validator(self, schema_uri: str) -> Draft202012Validator:
        return Draft202012Validator({"$ref": schema_uri}, registry=self._registry)

    # --- operations ---------------------------------------------------------------------------

    def operation_uri(self, api_file: str, method: str, path: str,
                      api: str = "client-server") -> str:
        rel = f"api/{api}/{api_file.removesuffix('.yaml')}.yaml"
        doc = self._document(self.uri(rel))
        # Path keys are matched ignoring stray whitespace (inviting.yaml has "/invite ").
        keys = {k.strip(): k for k in doc.get("paths", {})}
        if path not in keys:
            raise SpecError(f"{rel} has no path {path}; it has {sorted(keys)}")
        op = doc["paths"][keys[path]].get(method.lower())
        if op is None:
            raise SpecError(f"{rel} has no {method.upper()} {path}")
        return _child(self.uri(rel), "paths", keys[path], method.lower())

    def documented_statuses(self, api_file: str, method: str, path: str) -> set[int]:
        op = self._lookup(self.operation_uri(api_file, method, path))
        return {int(s) for s in op.get("responses", {}) if s.isdigit()}

    def response_schema_uri(self, api_file: str, method: str, path: str,
                            status: int, api: str = "client-server") -> str | None:
        """The URI of the JSON schema of one response; for an error status the spec does not
        list for the operation, the standard error schema. None when a documented response
        has no JSON body schema."""
        op_uri = self.operation_uri(api_file, method, path, api)
        responses = self._lookup(op_uri).get("responses", {})
        if str(status) not in responses:
            if status >= 400:
                return self.uri(ERROR_SCHEMA)
            raise SpecError(f"{method.upper()} {path} ({api_file}.yaml) does not document a "
                            f"{status} response; it documents {sorted(responses)}")
        resp_uri, resp = self._follow(_child(op_uri, "responses", str(status)))
        content = resp.get("content", {})
        if "application/json" not in content or "schema" not in content["application/json"]:
            return None
        return _child(resp_uri, "content", "application/json", "schema")

    def check_response(self, api_file: str, method: str, path: str, status: int, body: Any,
                       *, strict: bool = True, api: str = "client-server") -> None:
        """Raise SpecError unless ``body`` matches the spec's schema for ``status``.

        With ``strict`` a 2xx object body may not carry top-level keys the schema does not
        declare (where the schema declares its keys and allows no others by pattern)."""
        uri = self.response_schema_uri(api_file, method, path, status, api)
        if uri is None:
            return
        errors = _errors(self.validator(uri), body)
        if errors:
            raise SpecError(f"{method.upper()} {path} -> {status} does not match "
                            f"{api_file}.yaml:\n" + "\n".join(errors))
        if strict and 200 <= status < 300 and isinstance(body, dict):
            declared = self.declared_keys(uri)
            if declared is not None:
                declared |= PROSE_KEYS.get((api_file, method.upper(), path), frozenset())
            extra = sorted(set(body) - declared) if declared is not None else []
            if extra:
                raise SpecError(f"{method.upper()} {path} -> {status}: keys {extra} are not "
                                f"in {api_file}.yaml (it declares {sorted(declared or ())})")

    def declared_keys(self, schema_uri: str) -> set[str] | None:
        """Top-level property names a schema declares (through ``$ref`` and ``allOf``);
        None when it also admits other names (additional/patternProperties, anyOf...)."""
        keys: set[str] = set()
        for node in self._top_level_parts(schema_uri, set()):
            if node.get("additionalProperties", False) is not False or any(
                k in node for k in ("patternProperties", "anyOf", "oneOf")
            ):
                return None
            keys.update(node.get("properties", {}))
        return keys

    def _top_level_parts(self, uri: str, seen: set[str]) -> Iterator[dict[str, Any]]:
        if uri in seen:
            return
        seen.add(uri)
        node = self._lookup(uri)
        if not isinstance(node, dict):
            return
        yield node
        if "$ref" in node:
            yield from self._top_level_parts(urljoin(uri, node["$ref"]), seen)
        for i, _ in enumerate(node.get("allOf", [])):
            yield from self._top_level_parts(_child(uri, "allOf", str(i)), seen)

    # --- events ---------------------------------------------------------------------------------

    def event_schema_uri(self, event_type: str) -> str | None:
        path = self.data / "event-schemas" / "schema" / f"{event_type}.yaml"
        return path.resolve().as_uri() if path.is_file() else None

    def check_event(self, event: dict[str, Any], *, with_room_id: bool = True,
                    require_known_type: bool = False) -> None:
        """A client-format event: ClientEvent (or ClientEventWithoutRoomID), and the schema of
        its type from ``event-schemas/schema``. Event schemas demand ``room_id`` (RoomEvent);
        for /sync events, which omit it, a placeholder is added before that check. A redacted
        event (``unsigned.redacted_because``) has lost its content, so only the format holds."""
        definition = "client_event.yaml" if with_room_id else "client_event_without_room_id.yaml"
        uri = self.uri(f"api/client-server/definitions/{definition}")
        errors = _errors(self.validator(uri), event)
        if not with_room_id and "room_id" in event:
            errors.append("room_id: must be omitted in this (room_id-less) event format")
        schema_uri = self.event_schema_uri(str(event.get("type")))
        unsigned = event.get("unsigned")
        if isinstance(unsigned, dict) and "redacted_because" in unsigned:
            pass
        elif schema_uri is None:
            if require_known_type:
                errors.append(f"no event schema for type {event.get('type')!r}")
        else:
            subject = event if with_room_id else {"room_id": "!placeholder:spec", **event}
            errors += _errors(self.validator(schema_uri), subject)
        if errors:
            raise SpecError(f"event {event.get('event_id')} ({event.get('type')}) does not "
                            "match the spec:\n" + "\n".join(errors))


def _errors(validator: Draft202012Validator, instance: Any) -> list[str]:
    found = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    return [f"  at /{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in found]
