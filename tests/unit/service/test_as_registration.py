"""Application service registrations: Synapse-format files, validation, the stored ones."""

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from edgehs.config import ConfigError
from edgehs.service.appservice.registration import (
    AppServiceRegistrations,
    load_registrations,
    parse_registration,
)
from edgehs.service.appservice.registration_files import (
    add_config_file_entry,
    new_registration,
    render_registration,
)
from edgehs.store.appservices import AppServiceStore
from edgehs.store.db import Database
from edgehs.store.users import UserStore

SERVER = "example.org"

# What mautrix-telegram writes (abridged), plus a key Synapse ignores.
TELEGRAM = """\
id: telegram
as_token: "ARjo8Ot8Y6hRmfnbXm8QdTW6KMeJ3FjFtlUb13lMEwLgxlBKBDQoDkzqsnfV9JiV"
hs_token: "9pVUrxh2Ke1aTB8KDl2vK1Y8NVA5MmMQzCUuBzQsSwR0kvpeEDOAhxOaxXQXcXBB"
namespaces:
  users:
  - exclusive: true
    regex: '^@telegram_.+:example.org$'
  - exclusive: true
    regex: '^@telegrambot:example.org$'
  aliases:
  - exclusive: true
    regex: '^#telegram_.+:example.org$'
url: http://localhost:29317/
sender_localpart: telegrambot
rate_limited: false
de.sorunome.msc2409.push_ephemeral: true
org.matrix.msc3202: true
"""


def valid() -> dict[str, Any]:
    return dict(yaml.safe_load(TELEGRAM))


def write(path: Path, data: Any) -> Path:
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def test_mautrix_telegram_file_loads(tmp_path: Path) -> None:
    [service] = load_registrations([write(tmp_path / "telegram.yaml", TELEGRAM)], SERVER)
    assert (service.id, service.sender, service.url) == (
        "telegram", "@telegrambot:example.org", "http://localhost:29317")
    assert service.owns_user("@telegram_1234:example.org")
    assert service.exclusive_user("@telegram_1234:example.org")
    assert not service.owns_user("@telegram_1234:other.org")
    assert service.exclusive_alias("#telegram_chat:example.org")
    assert service.rooms == () and service.protocols == ()
    assert service.rate_limited is False and service.receive_ephemeral is True
    assert service.extra == {"org.matrix.msc3202": True}
    assert service.source == str(tmp_path / "telegram.yaml")


def test_defaults_and_synapse_spellings() -> None:
    raw = valid()
    for key in ("rate_limited", "de.sorunome.msc2409.push_ephemeral"):
        del raw[key]
    raw["namespaces"] = {"users": None, "rooms": [{"regex": "!.*:example.org", "exclusive": False}]}
    raw["protocols"] = ["telegram"]
    service = parse_registration(raw, "f.yaml", SERVER)
    assert service.rate_limited is True and service.receive_ephemeral is False
    assert service.users == () and service.owns_room("!abc:example.org")
    assert service.protocols == ("telegram",)
    # the stable key wins over Synapse's unstable one
    raw.update({"receive_ephemeral": False, "de.sorunome.msc2409.push_ephemeral": True})
    assert parse_registration(raw, "f.yaml", SERVER).receive_ephemeral is False


@pytest.mark.parametrize("url", [None, "", "absent"])
def test_no_url_means_no_pushes(url: str | None) -> None:
    # mautrix-go writes url: "" for its double-puppet registration; Synapse treats it as null.
    raw = valid()
    if url == "absent":
        del raw["url"]
    else:
        raw["url"] = url
    assert parse_registration(raw, "f.yaml", SERVER).url is None


def test_mautrix_go_random_mixed_case_sender_localpart() -> None:
    raw = valid()
    raw["sender_localpart"] = "wX3uQ9zTkC0aBvL2mN8pR5sD7fG1hJ4k"
    service = parse_registration(raw, "f.yaml", SERVER)
    assert service.sender == "@wX3uQ9zTkC0aBvL2mN8pR5sD7fG1hJ4k:example.org"


BAD_FIELDS: list[tuple[str, Any, str]] = [
    # (dotted key to set, value ("DELETE" removes it), the field the error must name)
    ("id", "DELETE", "id"),
    ("id", 42, "id"),
    ("id", "", "id"),
    ("as_token", "DELETE", "as_token"),
    ("as_token", "", "as_token"),
    ("as_token", 123, "as_token"),
    ("as_token", "two words", "as_token"),
    ("hs_token", "DELETE", "hs_token"),
    ("hs_token", ["x"], "hs_token"),
    ("hs_token", "ARjo8Ot8Y6hRmfnbXm8QdTW6KMeJ3FjFtlUb13lMEwLgxlBKBDQoDkzqsnfV9JiV", "hs_token"),
    ("sender_localpart", "DELETE", "sender_localpart"),
    ("sender_localpart", "bad:colon", "sender_localpart"),
    ("sender_localpart", "has space", "sender_localpart"),
    ("sender_localpart", "", "sender_localpart"),
    ("sender_localpart", "x" * 250, "sender_localpart"),
    ("url", "ftp://example.org", "url"),
    ("url", "localhost:29317", "url"),
    ("url", 29317, "url"),
    ("namespaces", "DELETE", "namespaces"),
    ("namespaces", ["users"], "namespaces"),
    ("namespaces.users", {"regex": "@a.*"}, "namespaces.users"),
    ("namespaces.users.0", "@telegram_.*", "namespaces.users[0]"),
    ("namespaces.users.0.regex", "@telegram_((", "namespaces.users[0].regex"),
    ("namespaces.users.1.regex", "DELETE", "namespaces.users[1].regex"),
    ("namespaces.users.1.regex", 7, "namespaces.users[1].regex"),
    ("namespaces.aliases.0.exclusive", "DELETE", "namespaces.aliases[0].exclusive"),
    ("namespaces.aliases.0.exclusive", "yes", "namespaces.aliases[0].exclusive"),
    ("namespaces.rooms", [{"regex": "[", "exclusive": False}], "namespaces.rooms[0].regex"),
    ("rate_limited", "false", "rate_limited"),
    ("protocols", "telegram", "protocols"),
    ("protocols", ["telegram", 5], "protocols[1]"),
    ("receive_ephemeral", "true", "receive_ephemeral"),
    ("de.sorunome.msc2409.push_ephemeral", 1, "de.sorunome.msc2409.push_ephemeral"),
]


def mutate(raw: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    raw = copy.deepcopy(raw)
    *parents, last = dotted.split(".") if not dotted.startswith("de.") else [dotted]
    target: Any = raw
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    key: Any = int(last) if last.isdigit() else last
    if value == "DELETE":
        del target[key]
    else:
        target[key] = value
    return raw


@pytest.mark.parametrize(("dotted", "value", "field"), BAD_FIELDS)
def test_each_bad_field_is_named_with_the_file(tmp_path: Path, dotted: str, value: Any,
                                               field: str) -> None:
    path = write(tmp_path / "bridge.yaml", mutate(valid(), dotted, value))
    with pytest.raises(ConfigError) as caught:
        load_registrations([path], SERVER)
    assert str(caught.value).startswith(f"{path}: {field}: "), caught.value


def test_invalid_regex_message_quotes_it(tmp_path: Path) -> None:
    path = write(tmp_path / "x.yaml", mutate(valid(), "namespaces.users.0.regex", "@a(("))
    with pytest.raises(ConfigError, match=r"namespaces\.users\[0\]\.regex: invalid regex '@a\(\('"):
        load_registrations([path], SERVER)


@pytest.mark.parametrize(("text", "problem"), [
    ("id: [unclosed\n", "not valid YAML"),
    ("- id: telegram\n", "must be a YAML mapping"),
    ("", "must be a YAML mapping"),
    ("just a string\n", "must be a YAML mapping"),
])
def test_unusable_files_are_named(tmp_path: Path, text: str, problem: str) -> None:
    path = write(tmp_path / "reg.yaml", text)
    with pytest.raises(ConfigError, match=problem) as caught:
        load_registrations([path], SERVER)
    assert str(caught.value).startswith(str(path))


def test_unreadable_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read") as caught:
        load_registrations([tmp_path / "absent.yaml"], SERVER)
    assert str(tmp_path / "absent.yaml") in str(caught.value)
    with pytest.raises(ConfigError, match="cannot read"):
        load_registrations([tmp_path], SERVER)  # a directory


def test_duplicate_id_or_as_token_names_both_files(tmp_path: Path) -> None:
    first = write(tmp_path / "a.yaml", valid())
    same_id = write(tmp_path / "b.yaml", {**valid(), "as_token": "other", "hs_token": "other2"})
    with pytest.raises(ConfigError, match="id") as caught:
        load_registrations([first, same_id], SERVER)
    assert str(first) in str(caught.value) and str(same_id) in str(caught.value)
    same_token = write(tmp_path / "c.yaml", {**valid(), "id": "other", "hs_token": "other2"})
    with pytest.raises(ConfigError, match="as_token") as caught:
        load_registrations([first, same_token], SERVER)
    assert str(first) in str(caught.value) and str(same_token) in str(caught.value)
    different = write(tmp_path / "d.yaml", {**valid(), "id": "x", "as_token": "y",
                                            "hs_token": "z"})
    assert [s.id for s in load_registrations([first, different], SERVER)] == ["telegram", "x"]


def test_new_registration_round_trips() -> None:
    raw = new_registration("midi", "http://127.0.0.1:9100", ["@midi_.*:pi.local"], [],
                           ["!.*:pi.local"], "midi", True, True)
    assert raw["as_token"] != raw["hs_token"] and len(raw["as_token"]) >= 40
    text = render_registration(raw)
    assert text.startswith("#")
    service = parse_registration(yaml.safe_load(text), "midi.yaml", "pi.local")
    assert service.exclusive_user("@midi_keys:pi.local") and service.receive_ephemeral
    assert service.owns_room("!abc:pi.local") and service.sender == "@midi:pi.local"


# --- editing edgehs.yaml ------------------------------------------------------------------------

GENERATED = """\
# edgehs configuration.
server_name: example.org

# Application service registration files (Synapse format).
# Default: []
app_service_config_files: []

# A comment after the key.
log_level: INFO
"""


def test_config_edit_of_generated_empty_flow_list_keeps_comments() -> None:
    text = add_config_file_entry(GENERATED, "appservices/telegram.yaml", "edgehs.yaml")
    assert "# Application service registration files (Synapse format).\n" in text
    assert "# A comment after the key.\n" in text
    assert yaml.safe_load(text)["app_service_config_files"] == ["appservices/telegram.yaml"]
    text = add_config_file_entry(text, "/etc/edgehs/irc.yaml", "edgehs.yaml")
    assert yaml.safe_load(text)["app_service_config_files"] == [
        "appservices/telegram.yaml", "/etc/edgehs/irc.yaml"]
    assert yaml.safe_load(text)["log_level"] == "INFO"


@pytest.mark.parametrize("text", [
    "server_name: x\napp_service_config_files: [a.yaml, 'b c.yaml']  # two\nlog_level: INFO\n",
    "server_name: x\napp_service_config_files:\n  - a.yaml\n  # a comment\n  - 'b c.yaml'\n\n"
    "log_level: INFO\n",
    "server_name: x\napp_service_config_files:\n- a.yaml\n- 'b c.yaml'",
])
def test_config_edit_appends_to_existing_lists(text: str) -> None:
    new = add_config_file_entry(text, "new: one.yaml", "edgehs.yaml")
    assert yaml.safe_load(new)["app_service_config_files"] == ["a.yaml", "b c.yaml",
                                                                "new: one.yaml"]
    assert yaml.safe_load(new)["server_name"] == "x"


def test_config_edit_adds_a_missing_key() -> None:
    for text in ("server_name: x\n", "server_name: x", ""):
        new = add_config_file_entry(text, "a.yaml", "edgehs.yaml")
        assert yaml.safe_load(new)["app_service_config_files"] == ["a.yaml"]


def test_config_edit_refuses_what_it_cannot_edit_safely() -> None:
    text = 'server_name: x\n"app_service_config_files": [a.yaml]\n'
    with pytest.raises(ConfigError, match=r"edgehs\.yaml: app_service_config_files: .*by hand"):
        add_config_file_entry(text, "b.yaml", "edgehs.yaml")


# --- stored registrations -----------------------------------------------------------------------


async def test_store_saves_updates_and_deletes(db: Database) -> None:
    store = AppServiceStore(db)
    await store.save("irc", "tok", {"id": "irc", "as_token": "tok"}, 1)
    await store.save("irc", "tok", {"id": "irc", "as_token": "tok", "url": "http://x"}, 2)
    assert await store.get_all() == [("irc", {"id": "irc", "as_token": "tok",
                                              "url": "http://x"})]
    assert await db.fetchval("SELECT created_ts FROM appservices") == 1
    assert await store.delete("irc") is True and await store.delete("irc") is False
    assert await store.get_all() == []


async def test_load_merges_files_and_rows_files_win(db: Database, tmp_path: Path) -> None:
    store = AppServiceStore(db)
    clash = {**valid(), "hs_token": "h1", "url": "http://db"}  # same id and as_token as the file
    await store.save("telegram", clash["as_token"], clash, 1)
    extra = {**valid(), "id": "irc", "as_token": "a2", "hs_token": "h2"}
    await store.save("irc", "a2", extra, 2)
    await store.save("broken", "a3", {"id": "broken", "as_token": "a3"}, 3)
    registrations = AppServiceRegistrations(SERVER, store, UserStore(db))
    registry = await registrations.load([write(tmp_path / "t.yaml", TELEGRAM)])
    assert sorted(s.id for s in registry.all()) == ["irc", "telegram"]
    telegram = registry.by_id("telegram")
    assert telegram is not None and telegram.url == "http://localhost:29317"
    irc = registry.by_token("a2")
    assert irc is not None and irc.source == "database"
    assert registrations.registry is registry
