"""Authorization rules 1-4, 6-9 and 11, and auth events selection.

https://spec.matrix.org/v1.19/rooms/v12/#authorization-rules (v10/v11 pages for their numbering)
https://spec.matrix.org/v1.19/server-server-api/#auth-events-selection

Each rule has an event it rejects and one it accepts. Rule 5 (membership) is tested in
test_member_auth.py and rule 10 (power levels) in test_power_levels_auth.py.
"""

import pytest
from factories import (
    ALICE,
    BOB,
    CHARLIE,
    MALLORY,
    SERVER,
    Room,
    assert_rejected,
    member,
    standard_room,
    versions,
    versions_where,
)

from edgehs.errors import AuthError, Codes
from edgehs.protocol.auth_context import rule_label
from edgehs.protocol.event_auth import auth_types_for_event, check_auth_rules
from edgehs.protocol.events import auth_event_ids
from edgehs.protocol.room_versions import (
    ROOM_V1,
    ROOM_V2,
    ROOM_V5,
    ROOM_V6,
    ROOM_V7,
    ROOM_V8,
    ROOM_V9,
    ROOM_V10,
    ROOM_V11,
    ROOM_V12,
    RoomVersion,
)

CREATE = ("m.room.create", "")
POWER = ("m.room.power_levels", "")
JOIN_RULES = ("m.room.join_rules", "")


def create_event(rv: RoomVersion, **changes: object) -> tuple[Room, dict[str, object]]:
    room = Room(rv)
    event = dict(room.create)
    event.update(changes)
    return room, event


# -- auth events selection ----------------------------------------------------------------------


@versions()
def test_selection_for_a_message(rv: RoomVersion) -> None:
    keys = auth_types_for_event("m.room.message", ALICE, None, {}, rv)
    expected = [POWER, ("m.room.member", ALICE)]
    assert keys == (expected if rv.room_id_from_create_event else [CREATE, *expected])


@versions()
def test_selection_for_memberships(rv: RoomVersion) -> None:
    base = [] if rv.room_id_from_create_event else [CREATE]
    sender, target = ("m.room.member", ALICE), ("m.room.member", BOB)
    assert auth_types_for_event("m.room.member", ALICE, BOB, member("ban"), rv) == [
        *base, POWER, sender, target,
    ]  # fmt: skip
    for membership in ("join", "invite", "knock"):
        keys = auth_types_for_event("m.room.member", BOB, BOB, member(membership), rv)
        assert keys == [*base, POWER, target, JOIN_RULES]
    restricted = member("join", join_authorised_via_users_server=CHARLIE)
    keys = auth_types_for_event("m.room.member", BOB, BOB, restricted, rv)
    # 4.4 only in versions with restricted rooms (v8+)
    assert (keys[-1] == ("m.room.member", CHARLIE)) == rv.restricted_join_rule
    third_party = member("invite", third_party_invite={"signed": {"token": "tok"}})
    keys = auth_types_for_event("m.room.member", ALICE, BOB, third_party, rv)
    assert keys[-1] == ("m.room.third_party_invite", "tok")
    assert auth_types_for_event("m.room.create", ALICE, "", {}, rv) == []


# -- rule 1: m.room.create ----------------------------------------------------------------------


@versions()
def test_1_1_create_with_prev_events(rv: RoomVersion) -> None:
    room, event = create_event(rv, prev_events=["$earlier"])
    assert_rejected(room, event, "1.1")
    room.check(room.create)


@versions(ROOM_V12)
def test_1_2_v12_create_with_room_id(rv: RoomVersion) -> None:
    room, event = create_event(rv, room_id="!create")
    assert_rejected(room, event, "1.2")


@versions_where(lambda rv: not rv.room_id_from_create_event)
def test_1_2_create_room_id_from_another_server(rv: RoomVersion) -> None:
    room, event = create_event(rv, room_id="!room:elsewhere.example")
    assert_rejected(room, event, "1.2")
    room.check(create_event(rv, room_id=f"!other:{SERVER}")[1])


@versions()
def test_1_3_unknown_room_version(rv: RoomVersion) -> None:
    room, event = create_event(rv)
    event["content"] = {**room.create["content"], "room_version": "9999"}
    assert_rejected(room, event, "1.3")
    event["content"] = {**room.create["content"], "room_version": ["12"]}
    assert_rejected(room, event, "1.3")
    event["content"] = {k: v for k, v in room.create["content"].items() if k != "room_version"}
    room.check(event)


@versions_where(lambda rv: not rv.implicit_room_creator)
def test_1_4_create_needs_creator_before_v11(rv: RoomVersion) -> None:
    room, event = create_event(rv, content={"room_version": rv.identifier})
    assert_rejected(room, event, "1.4")


@versions(ROOM_V11, ROOM_V12)
def test_1_4_creator_not_needed_from_v11(rv: RoomVersion) -> None:
    room, event = create_event(rv, content={"room_version": rv.identifier})
    room.check(event)


@versions(ROOM_V12)
@pytest.mark.parametrize("bad", ["@bob:example.org", ["bob"], [BOB, 5], ["@:x"], [None]])
def test_1_4_v12_additional_creators_must_be_user_ids(rv: RoomVersion, bad: object) -> None:
    room, event = create_event(rv, content={"room_version": "12", "additional_creators": bad})
    assert_rejected(room, event, "1.4")
    event["content"] = {"room_version": "12", "additional_creators": [BOB, MALLORY]}
    room.check(event)


@versions_where(lambda rv: not rv.creators_have_infinite_power)
def test_1_4_additional_creators_ignored_before_v12(rv: RoomVersion) -> None:
    room, event = create_event(rv)
    event["content"] = {**room.create["content"], "additional_creators": "junk"}
    room.check(event)


# -- rule 2 (v12): the room id is the create event's id -------------------------------------------


@versions(ROOM_V12)
def test_2_room_id_must_come_from_the_create_event(rv: RoomVersion) -> None:
    room = standard_room(rv)
    assert_rejected(room, room.build("$m", "m.room.message", BOB, room_id="!other"), "2")
    room.check(room.build("$m", "m.room.message", BOB))


# -- rule 3: the event's auth_events --------------------------------------------------------------


@versions()
def test_3_1_duplicate_auth_events(rv: RoomVersion) -> None:
    room = standard_room(rv)
    event = room.build("$m", "m.room.message", BOB)
    event["auth_events"] = [*event["auth_events"], *room.refs(["$power"])]
    assert_rejected(room, event, "3.1")


@versions()
def test_3_1_two_events_for_one_key(rv: RoomVersion) -> None:
    room = standard_room(rv)
    old_power = room.state[POWER]
    room.add("$power2", "m.room.power_levels", ALICE, room.power_levels(), "")
    event = room.build("$m", "m.room.message", BOB)
    event["auth_events"] = [*event["auth_events"], *room.refs([old_power])]
    # The map holds one event per key, so the other one is "not among the auth events".
    assert_rejected(room, event, "3.2")


@versions()
def test_3_2_auth_event_outside_the_selection(rv: RoomVersion) -> None:
    room = standard_room(rv)
    event = room.build("$m", "m.room.message", BOB)
    event["auth_events"] = [*event["auth_events"], *room.refs(["$join_rules"])]
    assert_rejected(room, event, "3.2")
    room.check(room.build("$m", "m.room.message", BOB))


@versions()
def test_3_2_unknown_auth_event(rv: RoomVersion) -> None:
    room = standard_room(rv)
    event = room.build("$m", "m.room.message", BOB)
    event["auth_events"] = [*event["auth_events"], *room.refs(["$nowhere"])]
    assert_rejected(room, event, "3.2")
    state = {key: room.events[event_id] for key, event_id in room.state.items()}
    check_auth_rules(event, state, rv, auth_events_from_state=True)


@versions()
def test_3_2_auth_events_in_the_version_format(rv: RoomVersion) -> None:
    """v1/v2 cite ``[event_id, {"sha256": hash}]`` pairs, later versions plain ids."""
    room = standard_room(rv)
    event = room.build("$m", "m.room.message", BOB)
    ids = auth_event_ids(event)
    other_format = (ids if rv.event_refs_with_hashes
                    else [[event_id, {"sha256": "h"}] for event_id in ids])
    assert_rejected(room, {**event, "auth_events": other_format}, "3.2")
    room.check(event)


@versions(ROOM_V12)
def test_3_2_v12_create_event_must_not_be_cited(rv: RoomVersion) -> None:
    room = standard_room(rv)
    event = room.build("$m", "m.room.message", BOB)
    event["auth_events"] = [*event["auth_events"], *room.refs(["$create"])]
    assert_rejected(room, event, "3.2")


@versions_where(lambda rv: not rv.room_id_from_create_event)
def test_2_4_create_event_must_be_cited(rv: RoomVersion) -> None:
    room = standard_room(rv)
    event = room.build("$m", "m.room.message", BOB)
    event["auth_events"] = room.refs([e for e in auth_event_ids(event) if e != "$create"])
    error = assert_rejected(room, event, "3.2", legacy="2.4")
    assert "rule 2.4 " in error.msg


@versions()
def test_create_event_must_be_passed(rv: RoomVersion) -> None:
    room = standard_room(rv)
    event = room.build("$m", "m.room.message", BOB)
    auth_events = room.auth_events_for(event)
    del auth_events[CREATE]
    with pytest.raises(AuthError, match=r"no m\.room\.create"):
        check_auth_rules(event, auth_events, rv)


@versions()
def test_3_4_auth_event_from_another_room(rv: RoomVersion) -> None:
    room = standard_room(rv)
    room.events["$power"]["room_id"] = "!elsewhere:example.org"
    assert_rejected(room, room.build("$m", "m.room.message", BOB), "3.4")


@versions()
def test_state_mode_allows_older_auth_events(rv: RoomVersion) -> None:
    room = standard_room(rv)
    event = room.build("$m", "m.room.message", BOB)  # cites "$power"
    room.add("$power2", "m.room.power_levels", ALICE, room.power_levels(), "")
    state = {key: room.events[event_id] for key, event_id in room.state.items()}
    check_auth_rules(event, state, rv, auth_events_from_state=True)


@versions()
def test_uncited_events_are_not_used(rv: RoomVersion) -> None:
    room = standard_room(rv, join_rule="public", members=())
    join = room.build("$join-bob", "m.room.member", BOB, member("join"), BOB)
    join["auth_events"] = room.refs([e for e in auth_event_ids(join) if e != "$join_rules"])
    auth_events = room.auth_events_for(join) | {JOIN_RULES: room.events["$join_rules"]}
    with pytest.raises(AuthError, match=r"rule \S+ .*join_rule None"):
        check_auth_rules(join, auth_events, rv)


# -- rule 4: m.federate -------------------------------------------------------------------------


@versions()
def test_4_room_without_federation(rv: RoomVersion) -> None:
    room = Room(rv, create_content={"m.federate": False})
    room.join(ALICE)
    room.add("$join_rules", "m.room.join_rules", ALICE, {"join_rule": "public"}, "")
    join = room.build("$join-m", "m.room.member", MALLORY, member("join"), MALLORY)
    assert_rejected(room, join, "4")
    room.check(room.build("$join-bob", "m.room.member", BOB, member("join"), BOB))


# -- v1-v5 rule 4: m.room.aliases ----------------------------------------------------------------


@versions_where(lambda rv: rv.special_case_aliases_auth)
def test_aliases_rule_before_v6(rv: RoomVersion) -> None:
    room = standard_room(rv)
    aliases = {"aliases": ["#a:evil.example"]}
    # 4.2: the state_key must be the sender's server; 4.3: then allowed whatever the levels
    event = room.build("$a", "m.room.aliases", BOB, aliases, "evil.example")
    error = assert_rejected(room, event, "4", legacy="4.2")
    assert "rule 4.2 " in error.msg
    room.check(room.build("$a", "m.room.aliases", BOB, aliases, SERVER))
    room.check(room.build("$a", "m.room.aliases", MALLORY, aliases, "evil.example"))
    no_key = room.build("$a", "m.room.aliases", BOB, aliases)
    assert "rule 4.1 " in assert_rejected(room, no_key, "4", legacy="4.1").msg


@versions_where(lambda rv: not rv.special_case_aliases_auth)
def test_aliases_are_ordinary_state_from_v6(rv: RoomVersion) -> None:
    room = standard_room(rv)
    aliases = {"aliases": ["#a:example.org"]}
    # Bob (level 0) is below state_default: rule 8, as for any state event.
    assert_rejected(room, room.build("$a", "m.room.aliases", BOB, aliases, SERVER), "8")
    assert_rejected(room, room.build("$a", "m.room.aliases", MALLORY, aliases, "evil.example"), "6")
    room.check(room.build("$a", "m.room.aliases", ALICE, aliases, "anything"))


# -- v1/v2 rule 11: m.room.redaction --------------------------------------------------------------


@versions_where(lambda rv: rv.redaction_domain_auth)
def test_11_legacy_redaction_needs_redact_level_or_same_server(rv: RoomVersion) -> None:
    room = standard_room(rv, users={MALLORY: 0}, members=(BOB, MALLORY))
    room.add("$msg:example.org", "m.room.message", BOB)
    # 11.3: Mallory (level 0 < redact 50) may not redact an event of example.org
    foreign = room.build("$r:evil.example", "m.room.redaction", MALLORY, {},
                         redacts="$msg:example.org")
    error = assert_rejected(room, foreign, "11", legacy="11.3")
    assert "rule 11.3 " in error.msg
    # 11.2: an event of the redaction's own server
    room.check(room.build("$r:example.org", "m.room.redaction", BOB, {},
                          redacts="$msg:example.org"))
    # 11.1: Alice has the redact level
    room.check(room.build("$r:example.org", "m.room.redaction", ALICE, {},
                          redacts="$other:evil.example"))


@versions_where(lambda rv: not rv.redaction_domain_auth)
def test_no_redaction_rule_from_v3(rv: RoomVersion) -> None:
    room = standard_room(rv, users={MALLORY: 0}, members=(BOB, MALLORY))
    redacts = {"redacts": "$msg"} if rv.redacts_in_content else {}
    room.check(room.build("$r", "m.room.redaction", MALLORY, redacts, redacts="$msg"))


# -- rules 6-9 and 11 -----------------------------------------------------------------------------


@versions()
def test_6_sender_must_be_joined(rv: RoomVersion) -> None:
    room = standard_room(rv)
    assert_rejected(room, room.build("$m", "m.room.message", CHARLIE), "6")
    room.check(room.build("$m", "m.room.message", BOB))


@versions()
def test_7_third_party_invite_needs_invite_level(rv: RoomVersion) -> None:
    room = standard_room(rv, invite=50)
    tpi = room.build("$tpi", "m.room.third_party_invite", BOB, {"public_key": "k"}, "tok")
    assert_rejected(room, tpi, "7.1")
    room = standard_room(rv)
    room.check(room.build("$tpi", "m.room.third_party_invite", BOB, {"public_key": "k"}, "tok"))


@versions()
def test_8_required_power_level(rv: RoomVersion) -> None:
    room = standard_room(rv)
    assert_rejected(room, room.build("$t", "m.room.topic", BOB, {"topic": "x"}, ""), "8")
    room = standard_room(rv, events={"m.room.topic": 0}, events_default=10)
    room.check(room.build("$t", "m.room.topic", BOB, {"topic": "x"}, ""))
    assert_rejected(room, room.build("$m", "m.room.message", BOB), "8")


@versions()
def test_8_state_default_without_power_levels_is_zero(rv: RoomVersion) -> None:
    room = Room(rv)
    room.join(ALICE)
    room.add("$join_rules", "m.room.join_rules", ALICE, {"join_rule": "public"}, "")
    room.join(BOB)
    room.check(room.build("$t", "m.room.topic", BOB, {"topic": "x"}, ""))


@versions()
def test_8_redactions_need_only_their_event_level(rv: RoomVersion) -> None:
    room = standard_room(rv, redact=100)
    redacts = {"redacts": "$join-alice"} if rv.redacts_in_content else {}
    room.check(room.build("$r", "m.room.redaction", BOB, redacts, redacts="$join-alice"))
    room = standard_room(rv, events={"m.room.redaction": 50})
    assert_rejected(room, room.build("$r", "m.room.redaction", BOB, redacts), "8")


@versions()
def test_9_state_key_of_another_user(rv: RoomVersion) -> None:
    room = standard_room(rv, state_default=0)
    assert_rejected(room, room.build("$s", "org.example.thing", BOB, {}, ALICE), "9")
    room.check(room.build("$s", "org.example.thing", BOB, {}, BOB))
    room.check(room.build("$s", "org.example.thing", BOB, {}, "not-a-user"))


@versions()
def test_11_anything_else_is_allowed(rv: RoomVersion) -> None:
    room = standard_room(rv)
    room.check(room.build("$m", "org.example.custom", BOB, {"anything": [1, 2]}))


# -- error shape ----------------------------------------------------------------------------------


@versions()
def test_malformed_events_raise_auth_error(rv: RoomVersion) -> None:
    room = standard_room(rv)
    for change in ({"content": []}, {"sender": "bob"}, {"type": 5}, {"state_key": 1}):
        event = room.build("$m", "m.room.message", BOB)
        event.update(change)
        with pytest.raises(AuthError, match="malformed"):
            room.check(event)


def test_rule_numbers_follow_the_room_version() -> None:
    assert rule_label(ROOM_V12, "5.3.2") == "5.3.2"
    assert [rule_label(rv, "5.3.2") for rv in (ROOM_V10, ROOM_V11)] == ["4.3.2", "4.3.2"]
    assert rule_label(ROOM_V11, "3.1") == "2.1"
    assert rule_label(ROOM_V11, "3.4") == "2.5"
    assert rule_label(ROOM_V11, "10.3") == "9.3"
    assert rule_label(ROOM_V11, "10.9.1") == "9.8.1"
    assert rule_label(ROOM_V10, "1.4") == "1.4"
    assert rule_label(ROOM_V10, "11") == "10"
    # v1-v5: the aliases rule is 4, so member rules and the later ones keep v12's numbers
    assert rule_label(ROOM_V5, "5.1") == "5.1"
    assert rule_label(ROOM_V5, "4") == "3"
    assert rule_label(ROOM_V1, "6") == "6"
    assert rule_label(ROOM_V6, "6") == "5"
    # pre-v8: no 5.2 nor 5.3.5; pre-v7: no knock rule
    assert rule_label(ROOM_V2, "5.3.2") == "5.2.2"
    assert rule_label(ROOM_V2, "5.3.7") == "5.2.6"
    assert rule_label(ROOM_V6, "5.8") == "4.6"
    assert rule_label(ROOM_V7, "5.7.1") == "4.6.1"
    assert rule_label(ROOM_V7, "5.8") == "4.7"
    assert rule_label(ROOM_V8, "5.3.5.2") == "4.3.5.2"
    # power levels: v1-v9 start with the users check
    assert rule_label(ROOM_V1, "10.3") == "10.1"
    assert rule_label(ROOM_V1, "10.10.1") == "10.7.1"
    assert rule_label(ROOM_V9, "10.5") == "9.2"


def test_auth_error_is_403_forbidden() -> None:
    room = standard_room(ROOM_V11)
    error = assert_rejected(room, room.build("$m", "m.room.message", CHARLIE), "6")
    assert (error.status, error.errcode) == (403, Codes.FORBIDDEN)
    assert "rule 5 " in error.msg and "$m" in error.msg
