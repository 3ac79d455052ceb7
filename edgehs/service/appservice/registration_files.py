"""Writing application service registrations (``edgehs appservice new``, ``edgehs demo``):
a new registration in Synapse's format, its YAML text, and its entry in edgehs.yaml's
``app_service_config_files``. Reading and validating them is registration.py.

https://spec.matrix.org/v1.19/application-service-api/#registration
"""

import json
import re
import secrets

import yaml

from edgehs.config import ConfigError
from edgehs.types import JsonDict

CONFIG_KEY_RE = re.compile(r"^app_service_config_files\s*:(.*)$")


def new_registration(
    as_id: str, url: str | None, users: list[str], aliases: list[str], rooms: list[str],
    sender_localpart: str, exclusive: bool, receive_ephemeral: bool,
) -> JsonDict:
    """A registration in Synapse's format with fresh random tokens."""
    def namespace(regexes: list[str]) -> list[JsonDict]:
        return [{"regex": r, "exclusive": exclusive} for r in regexes]
    return {
        "id": as_id,
        "url": url,
        "as_token": secrets.token_urlsafe(32),
        "hs_token": secrets.token_urlsafe(32),
        "sender_localpart": sender_localpart,
        "rate_limited": True,
        "receive_ephemeral": receive_ephemeral,
        "namespaces": {"users": namespace(users), "aliases": namespace(aliases),
                       "rooms": namespace(rooms)},
    }


def render_registration(registration: JsonDict) -> str:
    head = ("# Application service registration (Synapse's format), written by "
            "`edgehs appservice new`.\n# Keep it secret: as_token and hs_token are "
            "passwords. The server reads it at start-up.\n")
    return head + yaml.safe_dump(registration, sort_keys=False, allow_unicode=True)


def add_config_file_entry(text: str, entry: str, where: str) -> str:
    """``text`` (an edgehs.yaml) with ``entry`` appended to ``app_service_config_files``.

    The text is edited line by line so comments stay; the result is checked by parsing it.
    """
    old = (yaml.safe_load(text) or {}).get("app_service_config_files") or []
    lines = text.splitlines(keepends=True)
    item = f"- {json.dumps(entry)}\n"  # a JSON string is a double-quoted YAML scalar
    for i, line in enumerate(lines):
        match = CONFIG_KEY_RE.match(line.rstrip("\r\n"))
        if match is None:
            continue
        try:
            flow = yaml.safe_load(match.group(1))
        except yaml.YAMLError:
            flow = "?"
        if flow is not None:  # a flow list on one line, e.g. []: rewritten as a block list
            block = [f"- {json.dumps(str(p))}\n" for p in (flow if isinstance(flow, list) else [])]
            lines[i:i + 1] = ["app_service_config_files:\n", *block, item]
            break
        last, indent = i, ""
        for j in range(i + 1, len(lines)):
            stripped = lines[j].strip()
            if stripped and not stripped.startswith("#"):
                if lines[j][0] not in " \t-":
                    break
                last = j
                if stripped.startswith("-"):
                    indent = lines[j][:len(lines[j]) - len(lines[j].lstrip())]
        if not lines[last].endswith("\n"):
            lines[last] += "\n"
        lines.insert(last + 1, indent + item)
        break
    else:
        lines.append(("" if not text or text.endswith("\n") else "\n")
                     + "app_service_config_files:\n" + item)
    new_text = "".join(lines)
    try:
        new = (yaml.safe_load(new_text) or {}).get("app_service_config_files")
    except yaml.YAMLError:
        new = None
    if not isinstance(old, list) or new != [*old, entry]:
        raise ConfigError(f"{where}: app_service_config_files: cannot add {entry!r} "
                          f"automatically; add it to the list by hand")
    return new_text
