"""Authorization rule 5 (v10/v11: rule 4): m.room.member.

https://spec.matrix.org/v1.19/rooms/v12/#authorization-rules
"""

from typing import Any

import pytest
from factories import (
    ALICE,
    BOB,
    CHARLIE,
    MALLORY,
    ZARA,
    Room,
    assert_rejected,
    member,
    standard_room,
    versions,
    versions_where,
)

from edgehs.protocol.room_versions import ROOM_V10, ROOM_V11, ROOM_V12, RoomVersion
from edgehs.types import JsonDict


def membership_event(
    room: Room, sender: str, target: str, membership: str, **extra: Any
) -> JsonDict:
    return room.build("$m", "m.room.member", sender, member(membership, **extra), target)


# -- 5.1, 5.2 -------------------------------------------------------------------------------------


@versions()
def test_5_1_needs_state_key_and_membership(rv: RoomVersion) -> None:
    room = standard_room(rv)
    assert_rejected(room, room.build("$m", "m.room.member", BOB, {}, BOB), "5.1")
    assert_rejected(room, room.build("$m", "m.room.member", BOB, member("leave")), "5.1")
    room.check(membership_event(room, BOB, BOB, "leave"))


@versions_where(lambda rv: rv.restricted_join_rule)
def test_5_2_authorising_server_must_sign(rv: RoomVersion) -> None:
    room = standard_room(rv, join_rule="restricted", members=())
    join = membership_event(room, MALLORY, MALLORY, "join", join_authorised_via_users_server=ALICE)
    assert_rejected(room, join, "5.2")
    join["signatures"]["example.org"] = {"ed25519:a": "unchecked"}
    room.check(join)


@versions_where(lambda rv: not rv.restricted_join_rule)
def test_join_authorised_via_users_server_means_nothing_before_v8(rv: RoomVersion) -> None:
    room = standard_room(rv, members=())
    join = membership_event(room, MALLORY, MALLORY, "join", join_authorised_via_users_server=ALICE)
    room.check(join)  # public room; no signature of example.org needed


def supports(rv: RoomVersion, join_rule: str) -> bool:
    """Whether ``join_rule`` means something in ``rv`` (knock v7, restricted v8, both v10)."""
    return {
        "knock": rv.knock_join_rule,
        "restricted": rv.restricted_join_rule,
        "knock_restricted": rv.knock_restricted_join_rule,
    }.get(join_rule, True)


# -- 5.3 join -------------------------------------------------------------------------------------


@versions()
def test_5_3_1_creator_joins_right_after_create(rv: RoomVersion) -> None:
    room = Room(rv)
    room.check(room.build("$j", "m.room.member", ALICE, member("join"), ALICE))
    assert_rejected(room, room.build("$j", "m.room.member", BOB, member("join"), BOB), "5.3.7")


@versions(ROOM_V10)
def test_5_3_1_v10_creator_is_content_creator(rv: RoomVersion) -> None:
    room = Room(rv, create_content={"creator": BOB})
    room.check(room.build("$j", "m.room.member", BOB, member("join"), BOB))
    assert_rejected(room, room.build("$j", "m.room.member", ALICE, member("join"), ALICE), "5.3.7")


@versions(ROOM_V11, ROOM_V12)
def test_5_3_1_creator_is_sender_from_v11(rv: RoomVersion) -> None:
    room = Room(rv, create_content={"creator": BOB})
    room.check(room.build("$j", "m.room.member", ALICE, member("join"), ALICE))
    assert_rejected(room, room.build("$j", "m.room.member", BOB, member("join"), BOB), "5.3.7")


@versions()
def test_5_3_2_join_for_someone_else(rv: RoomVersion) -> None:
    room = standard_room(rv, members=())
    assert_rejected(room, membership_event(room, ALICE, BOB, "join"), "5.3.2")
    room.check(membership_event(room, BOB, BOB, "join"))


@versions()
def test_5_3_3_banned_user_cannot_join(rv: RoomVersion) -> None:
    room = standard_room(rv, members=())
    room.add("$ban", "m.room.member", ALICE, member("ban"), BOB)
    assert_rejected(room, membership_event(room, BOB, BOB, "join"), "5.3.3")


@versions()
@pytest.mark.parametrize("join_rule", ["invite", "knock"])
def test_5_3_4_invite_and_knock_rooms_need_an_invite(rv: RoomVersion, join_rule: str) -> None:
    if not supports(rv, join_rule):
        room = standard_room(rv, join_rule=join_rule, members=())
        assert_rejected(room, membership_event(room, BOB, BOB, "join"), "5.3.7")
        return
    room = standard_room(rv, join_rule=join_rule, members=())
    assert_rejected(room, membership_event(room, BOB, BOB, "join"), "5.3.4")
    room.add("$invite", "m.room.member", ALICE, member("invite"), BOB)
    room.check(membership_event(room, BOB, BOB, "join"))


@versions()
@pytest.mark.parametrize("join_rule", ["restricted", "knock_restricted"])
def test_5_3_5_restricted_rooms(rv: RoomVersion, join_rule: str) -> None:
    if not supports(rv, join_rule):  # an unknown join rule: nobody joins uninvited
        room = standard_room(rv, join_rule=join_rule, members=())
        join = membership_event(room, CHARLIE, CHARLIE, "join",
                                join_authorised_via_users_server=ALICE)
        join["signatures"]["example.org"] = {"ed25519:a": "unchecked"}
        assert_rejected(room, join, "5.3.7")
        return
    room = standard_room(rv, join_rule=join_rule, members=(BOB,), invite=50)

    def join(authoriser: str | None) -> JsonDict:
        extra = {} if authoriser is None else {"join_authorised_via_users_server": authoriser}
        event = membership_event(room, CHARLIE, CHARLIE, "join", **extra)
        event["signatures"]["example.org"] = {"ed25519:a": "unchecked"}
        event["signatures"]["evil.example"] = {"ed25519:a": "unchecked"}
        return event

    assert_rejected(room, join(None), "5.3.5.2")
    assert_rejected(room, join(BOB), "5.3.5.2")  # joined, but below the invite level
    assert_rejected(room, join(MALLORY), "5.3.5.2")  # not in the room
    room.check(join(ALICE))  # 5.3.5.3
    room.add("$invite", "m.room.member", ALICE, member("invite"), CHARLIE)
    room.check(join(None))  # 5.3.5.1


@versions()
def test_5_3_6_public_rooms(rv: RoomVersion) -> None:
    room = standard_room(rv, members=())
    room.check(membership_event(room, BOB, BOB, "join"))


@versions()
def test_5_3_7_other_join_rules(rv: RoomVersion) -> None:
    room = standard_room(rv, join_rule="private", members=())
    assert_rejected(room, membership_event(room, BOB, BOB, "join"), "5.3.7")


# -- 5.4 invite -----------------------------------------------------------------------------------


def third_party_room(rv: RoomVersion) -> Room:
    room = standard_room(rv)
    content = {"public_key": "KEY1", "public_keys": [{"public_key": "KEY2"}]}
    room.add("$tpi", "m.room.third_party_invite", ALICE, content, "tok")
    return room


def third_party_invite(room: Room, sender: str = ALICE, **signed: Any) -> JsonDict:
    signed = {"mxid": CHARLIE, "token": "tok", "signatures": {"id.example": {}}, **signed}
    signed = {key: value for key, value in signed.items() if value is not None}
    content = {"display_name": "c", "signed": signed}
    return membership_event(room, sender, CHARLIE, "invite", third_party_invite=content)


def accept_key(wanted: str) -> Any:
    return lambda signed, key: key == wanted


@versions()
@pytest.mark.parametrize("key", ["KEY1", "KEY2"])
def test_5_4_1_7_signed_third_party_invite(rv: RoomVersion, key: str) -> None:
    room = third_party_room(rv)
    room.check(third_party_invite(room), verify_signature=accept_key(key))
    assert_rejected(room, third_party_invite(room), "5.4.1.8")  # default verifier
    wrong = third_party_invite(room)
    assert_rejected(room, wrong, "5.4.1.8", verify_signature=accept_key("KEY3"))


@versions()
def test_5_4_1_third_party_invite_failures(rv: RoomVersion) -> None:
    room = third_party_room(rv)
    ok = accept_key("KEY1")
    no_signed = membership_event(room, ALICE, CHARLIE, "invite", third_party_invite={})
    assert_rejected(room, no_signed, "5.4.1.2", verify_signature=ok)
    assert_rejected(room, third_party_invite(room, token=None), "5.4.1.3", verify_signature=ok)
    assert_rejected(room, third_party_invite(room, mxid=ZARA), "5.4.1.4", verify_signature=ok)
    assert_rejected(room, third_party_invite(room, token="x"), "5.4.1.5", verify_signature=ok)
    assert_rejected(room, third_party_invite(room, sender=BOB), "5.4.1.6", verify_signature=ok)
    room.add("$ban", "m.room.member", ALICE, member("ban"), CHARLIE)
    assert_rejected(room, third_party_invite(room), "5.4.1.1", verify_signature=ok)


@versions()
def test_5_4_2_inviter_must_be_joined(rv: RoomVersion) -> None:
    room = standard_room(rv)
    assert_rejected(room, membership_event(room, CHARLIE, ZARA, "invite"), "5.4.2")
    room.check(membership_event(room, BOB, ZARA, "invite"))


@versions()
@pytest.mark.parametrize("current", ["join", "ban"])
def test_5_4_3_cannot_invite_joined_or_banned(rv: RoomVersion, current: str) -> None:
    room = standard_room(rv, members=(BOB, CHARLIE))
    if current == "ban":
        room.add("$ban", "m.room.member", ALICE, member("ban"), CHARLIE)
    assert_rejected(room, membership_event(room, BOB, CHARLIE, "invite"), "5.4.3")


@versions()
def test_5_4_4_invite_level(rv: RoomVersion) -> None:
    room = standard_room(rv, invite=50)
    assert_rejected(room, membership_event(room, BOB, ZARA, "invite"), "5.4.5")
    room.check(membership_event(room, ALICE, ZARA, "invite"))


# -- 5.5 leave ------------------------------------------------------------------------------------


@versions_where(lambda rv: rv.knock_join_rule)
def test_5_5_1_leaving_yourself(rv: RoomVersion) -> None:
    room = standard_room(rv, join_rule="knock")
    room.check(membership_event(room, BOB, BOB, "leave"))
    assert_rejected(room, membership_event(room, CHARLIE, CHARLIE, "leave"), "5.5.1")
    room.add("$knock", "m.room.member", CHARLIE, member("knock"), CHARLIE)
    room.check(membership_event(room, CHARLIE, CHARLIE, "leave"))  # withdraw the knock
    room.add("$invite", "m.room.member", ALICE, member("invite"), ZARA)
    room.check(membership_event(room, ZARA, ZARA, "leave"))  # reject the invite
    room.add("$ban", "m.room.member", ALICE, member("ban"), BOB)
    assert_rejected(room, membership_event(room, BOB, BOB, "leave"), "5.5.1")


@versions()
def test_5_5_2_kicker_must_be_joined(rv: RoomVersion) -> None:
    room = standard_room(rv, users={CHARLIE: 100})
    assert_rejected(room, membership_event(room, CHARLIE, BOB, "leave"), "5.5.2")


@versions()
def test_5_5_3_unban_needs_ban_level(rv: RoomVersion) -> None:
    room = standard_room(rv, users={CHARLIE: 60}, members=(CHARLIE,), ban=75)
    room.add("$ban", "m.room.member", ALICE, member("ban"), BOB)
    assert_rejected(room, membership_event(room, CHARLIE, BOB, "leave"), "5.5.3")
    room.check(membership_event(room, ALICE, BOB, "leave"))


@versions()
def test_5_5_4_kick(rv: RoomVersion) -> None:
    room = standard_room(rv, users={CHARLIE: 50}, members=(BOB, CHARLIE))
    room.check(membership_event(room, ALICE, BOB, "leave"))
    room.check(membership_event(room, CHARLIE, BOB, "leave"))
    assert_rejected(room, membership_event(room, BOB, CHARLIE, "leave"), "5.5.5")
    assert_rejected(room, membership_event(room, CHARLIE, ALICE, "leave"), "5.5.5")


@versions()
def test_5_5_5_equal_levels_cannot_kick(rv: RoomVersion) -> None:
    room = standard_room(rv, users={BOB: 50, CHARLIE: 50}, members=(BOB, CHARLIE))
    assert_rejected(room, membership_event(room, CHARLIE, BOB, "leave"), "5.5.5")


@versions()
def test_creators_against_other_admins(rv: RoomVersion) -> None:
    """v12 creators are infinite: an admin at 100 cannot kick them; before v12 they are 100."""
    room = standard_room(rv, users={BOB: 100})
    kick_alice = membership_event(room, BOB, ALICE, "leave")
    assert_rejected(room, kick_alice, "5.5.5")
    kick_bob = membership_event(room, ALICE, BOB, "leave")
    if rv.creators_have_infinite_power:
        room.check(kick_bob)
    else:
        assert_rejected(room, kick_bob, "5.5.5")


@versions(ROOM_V12)
def test_v12_additional_creators_are_infinite(rv: RoomVersion) -> None:
    room = Room(rv, create_content={"additional_creators": [BOB]})
    room.join(ALICE)
    room.add("$power", "m.room.power_levels", ALICE, {"users": {CHARLIE: 100}}, "")
    room.add("$join_rules", "m.room.join_rules", ALICE, {"join_rule": "public"}, "")
    room.join(BOB)
    room.join(CHARLIE)
    room.check(membership_event(room, BOB, CHARLIE, "ban"))
    assert_rejected(room, membership_event(room, CHARLIE, BOB, "ban"), "5.6.3")
    assert_rejected(room, membership_event(room, BOB, ALICE, "ban"), "5.6.3")


# -- 5.6 ban --------------------------------------------------------------------------------------


@versions()
def test_5_6_ban(rv: RoomVersion) -> None:
    room = standard_room(rv, users={CHARLIE: 100})
    assert_rejected(room, membership_event(room, CHARLIE, BOB, "ban"), "5.6.1")
    room.check(membership_event(room, ALICE, BOB, "ban"))
    room.check(membership_event(room, ALICE, ZARA, "ban"))  # not in the room yet
    assert_rejected(room, membership_event(room, BOB, ALICE, "ban"), "5.6.3")


# -- 5.7 knock, 5.8 unknown -----------------------------------------------------------------------


@versions()
@pytest.mark.parametrize("join_rule", ["knock", "knock_restricted"])
def test_5_7_knock(rv: RoomVersion, join_rule: str) -> None:
    if not rv.knock_join_rule:  # no knock membership: rule 5.8, unknown membership
        room = standard_room(rv, join_rule=join_rule)
        assert_rejected(room, membership_event(room, CHARLIE, CHARLIE, "knock"), "5.8")
        return
    room = standard_room(rv, join_rule=join_rule)
    if not supports(rv, join_rule):
        assert_rejected(room, membership_event(room, CHARLIE, CHARLIE, "knock"), "5.7.1")
        return
    room.check(membership_event(room, CHARLIE, CHARLIE, "knock"))  # 5.7.3
    assert_rejected(room, membership_event(room, ALICE, CHARLIE, "knock"), "5.7.2")
    assert_rejected(room, membership_event(room, BOB, BOB, "knock"), "5.7.4")
    room.add("$ban", "m.room.member", ALICE, member("ban"), CHARLIE)
    assert_rejected(room, membership_event(room, CHARLIE, CHARLIE, "knock"), "5.7.4")


@versions_where(lambda rv: rv.knock_join_rule)
@pytest.mark.parametrize("join_rule", ["public", "invite", "restricted"])
def test_5_7_1_knock_needs_a_knock_join_rule(rv: RoomVersion, join_rule: str) -> None:
    room = standard_room(rv, join_rule=join_rule)
    assert_rejected(room, membership_event(room, CHARLIE, CHARLIE, "knock"), "5.7.1")


@versions()
def test_5_8_unknown_membership(rv: RoomVersion) -> None:
    room = standard_room(rv)
    assert_rejected(room, membership_event(room, BOB, BOB, "dance"), "5.8")


@pytest.mark.parametrize("rv", [ROOM_V10, ROOM_V11, ROOM_V12], ids=["v10", "v11", "v12"])
def test_legacy_numbering_in_messages(rv: RoomVersion) -> None:
    room = standard_room(rv, members=())
    error = assert_rejected(room, membership_event(room, ALICE, BOB, "join"), "5.3.2")
    expected = "5.3.2" if rv.room_id_from_create_event else "4.3.2"
    assert f"rule {expected} " in error.msg
