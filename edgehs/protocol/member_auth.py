"""Authorization rule 5 (v6-v11: rule 4; v1-v5: rule 5): ``m.room.member`` events.

https://spec.matrix.org/v1.19/rooms/v12/#authorization-rules
https://spec.matrix.org/v1.19/rooms/v11/#authorization-rules
https://spec.matrix.org/v1.19/rooms/v10/#authorization-rules

Numbers are v12's (see ``auth_context`` for the renumbering of older versions: v1-v7 have no
rule 5.2 nor 5.3.5, v1-v6 no rule 5.7). Every path either returns
(allow) or raises ``AuthError`` (reject): membership events never reach rules 6-11.
"""

from typing import Any

from edgehs.protocol.auth_context import AuthContext, domain, is_valid_user_id
from edgehs.protocol.events import prev_event_ids

JOIN = "join"
INVITE = "invite"
LEAVE = "leave"
BAN = "ban"
KNOCK = "knock"


def check_member_event(ctx: AuthContext) -> None:
    """Rule 5: ``m.room.member``.

    1. No ``state_key`` or no ``membership`` in ``content``: reject.
    2. (v8+, ``rv.restricted_join_rule``) ``content.join_authorised_via_users_server``
       present: the event must be signed by that user's server, else reject.
    3. ``join``: see :func:`_check_join` (5.3.1-5.3.7).
    4. ``invite``: see :func:`_check_invite` (5.4.1-5.4.5).
    5. ``leave``: see :func:`_check_leave` (5.5.1-5.5.5).
    6. ``ban``: see :func:`_check_ban` (5.6.1-5.6.3).
    7. (v7+, ``rv.knock_join_rule``) ``knock``: see :func:`_check_knock` (5.7.1-5.7.4).
    8. Otherwise the membership is unknown: reject.
    """
    # 5.1
    state_key = ctx.event.get("state_key")
    membership = ctx.content.get("membership")
    if not isinstance(state_key, str):
        raise ctx.fail("5.1", "m.room.member event has no state_key")
    if not isinstance(membership, str):
        raise ctx.fail("5.1", "m.room.member event has no membership in content")
    # 5.2
    if ctx.rv.restricted_join_rule and "join_authorised_via_users_server" in ctx.content:
        authoriser = ctx.content["join_authorised_via_users_server"]
        if not is_valid_user_id(authoriser) or not _signed_by(ctx, domain(authoriser)):
            raise ctx.fail("5.2", "not signed by the server of join_authorised_via_users_server")
    if membership == JOIN:  # 5.3
        _check_join(ctx, state_key)
    elif membership == INVITE:  # 5.4
        _check_invite(ctx, state_key)
    elif membership == LEAVE:  # 5.5
        _check_leave(ctx, state_key)
    elif membership == BAN:  # 5.6
        _check_ban(ctx, state_key)
    elif membership == KNOCK and ctx.rv.knock_join_rule:  # 5.7
        _check_knock(ctx, state_key)
    else:  # 5.8
        raise ctx.fail("5.8", f"unknown membership {membership!r}")


def _signed_by(ctx: AuthContext, server_name: str) -> bool:
    """Whether the event carries a signature from ``server_name``.

    Only presence is checked here: the cryptographic check of every required signature
    (including that of the ``join_authorised_via_users_server`` user's server) is the PDU
    signature check done before the auth rules
    (https://spec.matrix.org/v1.19/server-server-api/#validating-hashes-and-signatures-on-received-events).
    """
    signatures = ctx.event.get("signatures")
    if not isinstance(signatures, dict):
        return False
    server_sigs = signatures.get(server_name)
    return isinstance(server_sigs, dict) and bool(server_sigs)


def _check_join(ctx: AuthContext, state_key: str) -> None:
    """Rule 5.3, ``membership`` is ``join``.

    1. The only previous event is the ``m.room.create`` event and ``state_key`` is the creator
       (v1-v10: ``content.creator``; v11+: the create event's ``sender``): allow.
    2. ``sender`` does not match ``state_key``: reject.
    3. ``sender`` is banned: reject.
    4. ``join_rule`` is ``invite`` or (v7+) ``knock``: allow if membership is ``invite`` or
       ``join``.
    5. (v8+) ``join_rule`` is ``restricted`` or (v10+) ``knock_restricted``:
       1. membership is ``join`` or ``invite``: allow;
       2. ``join_authorised_via_users_server`` is not a user able to invite (joined, and at
          or above the invite level): reject;
       3. otherwise allow.
    6. ``join_rule`` is ``public``: allow.
    7. Otherwise reject.
    """
    rv = ctx.rv
    # 5.3.1
    prev_events = prev_event_ids(ctx.event)
    if rv.implicit_room_creator:
        creator = ctx.create_event.get("sender")
    else:
        create_content = ctx.create_event.get("content")
        creator = create_content.get("creator") if isinstance(create_content, dict) else None
    if prev_events == [ctx.create_event.get("event_id")] and state_key == creator:
        return
    # 5.3.2
    if ctx.sender != state_key:
        raise ctx.fail("5.3.2", "sender does not match state_key")
    # 5.3.3
    current = ctx.membership(ctx.sender)
    if current == BAN:
        raise ctx.fail("5.3.3", "sender is banned")
    join_rule = ctx.join_rule()
    # 5.3.4
    if join_rule == "invite" or (join_rule == "knock" and rv.knock_join_rule):
        if current in (INVITE, JOIN):
            return
        raise ctx.fail("5.3.4", f"join_rule is {join_rule!r} and the user is not invited")
    # 5.3.5
    if (join_rule == "restricted" and rv.restricted_join_rule) or (
        join_rule == "knock_restricted" and rv.knock_restricted_join_rule
    ):
        # 5.3.5.1
        if current in (JOIN, INVITE):
            return
        # 5.3.5.2
        authoriser: Any = ctx.content.get("join_authorised_via_users_server")
        if not is_valid_user_id(authoriser):
            raise ctx.fail(
                "5.3.5.2", "restricted join without a valid join_authorised_via_users_server"
            )
        if ctx.membership(authoriser) != JOIN or ctx.power(authoriser) < ctx.named_level("invite"):
            raise ctx.fail(
                "5.3.5.2", f"{authoriser} (join_authorised_via_users_server) cannot invite"
            )
        # 5.3.5.3
        return
    # 5.3.6
    if join_rule == "public":
        return
    # 5.3.7
    raise ctx.fail("5.3.7", f"join_rule {join_rule!r} does not allow this join")


def _check_invite(ctx: AuthContext, state_key: str) -> None:
    """Rule 5.4, ``membership`` is ``invite``.

    1. ``content.third_party_invite`` present:
       1. target user is banned: reject;
       2. no ``signed``: reject;
       3. ``signed`` lacks ``mxid`` or ``token``: reject;
       4. ``mxid`` does not match ``state_key``: reject;
       5. no ``m.room.third_party_invite`` with ``state_key`` == ``token``: reject;
       6. ``sender`` does not match that event's ``sender``: reject;
       7. any signature in ``signed`` matches a public key of that event (``public_key`` and
          ``public_keys[].public_key``): allow — checked by ``ctx.verify_signature``;
       8. otherwise reject.
    2. ``sender`` is not joined: reject.
    3. Target user is joined or banned: reject.
    4. ``sender``'s level >= invite level: allow.
    5. Otherwise reject.
    """
    if "third_party_invite" in ctx.content:  # 5.4.1
        _check_third_party_invite(ctx, state_key)
        return
    # 5.4.2
    if ctx.membership(ctx.sender) != JOIN:
        raise ctx.fail("5.4.2", "sender is not joined to the room")
    # 5.4.3
    target = ctx.membership(state_key)
    if target in (JOIN, BAN):
        raise ctx.fail("5.4.3", f"target user's membership is {target!r}")
    # 5.4.4
    if ctx.power(ctx.sender) >= ctx.named_level("invite"):
        return
    # 5.4.5
    raise ctx.fail("5.4.5", "sender's power level is below the invite level")


def _check_third_party_invite(ctx: AuthContext, state_key: str) -> None:
    """Rule 5.4.1 (see :func:`_check_invite`)."""
    # 5.4.1.1
    if ctx.membership(state_key) == BAN:
        raise ctx.fail("5.4.1.1", "target user is banned")
    # 5.4.1.2
    invite = ctx.content["third_party_invite"]
    signed = invite.get("signed") if isinstance(invite, dict) else None
    if not isinstance(signed, dict):
        raise ctx.fail("5.4.1.2", "third_party_invite has no signed object")
    # 5.4.1.3
    mxid, token = signed.get("mxid"), signed.get("token")
    if not isinstance(mxid, str) or not isinstance(token, str):
        raise ctx.fail("5.4.1.3", "third_party_invite.signed lacks mxid or token")
    # 5.4.1.4
    if mxid != state_key:
        raise ctx.fail("5.4.1.4", "third_party_invite.signed.mxid does not match state_key")
    # 5.4.1.5
    tpi_event = ctx.auth_events.get(("m.room.third_party_invite", token))
    if tpi_event is None:
        raise ctx.fail("5.4.1.5", "no m.room.third_party_invite event for this token")
    # 5.4.1.6
    if tpi_event.get("sender") != ctx.sender:
        raise ctx.fail("5.4.1.6", "sender did not send the m.room.third_party_invite")
    # 5.4.1.7
    tpi_content = tpi_event.get("content")
    tpi_content = tpi_content if isinstance(tpi_content, dict) else {}
    keys: list[str] = []
    if isinstance(tpi_content.get("public_key"), str):  # 5.4.1.7.1
        keys.append(tpi_content["public_key"])
    for entry in tpi_content.get("public_keys") or []:  # 5.4.1.7.2
        if isinstance(entry, dict) and isinstance(entry.get("public_key"), str):
            keys.append(entry["public_key"])
    if any(ctx.verify_signature(signed, key) for key in keys):
        return
    # 5.4.1.8
    raise ctx.fail("5.4.1.8", "no signature in third_party_invite.signed matches a public key")


def _check_leave(ctx: AuthContext, state_key: str) -> None:
    """Rule 5.5, ``membership`` is ``leave``.

    1. ``sender`` matches ``state_key``: allow iff their membership is ``invite``, ``join`` or
       ``knock``.
    2. ``sender`` is not joined: reject.
    3. Target is banned and ``sender``'s level < ban level: reject.
    4. ``sender``'s level >= kick level and target's level < ``sender``'s: allow.
    5. Otherwise reject.
    """
    # 5.5.1
    if ctx.sender == state_key:
        current = ctx.membership(state_key)
        if current in (INVITE, JOIN) or (current == KNOCK and ctx.rv.knock_join_rule):
            return
        raise ctx.fail("5.5.1", f"cannot leave with membership {current!r}")
    # 5.5.2
    if ctx.membership(ctx.sender) != JOIN:
        raise ctx.fail("5.5.2", "sender is not joined to the room")
    sender_level = ctx.power(ctx.sender)
    # 5.5.3
    if ctx.membership(state_key) == BAN and sender_level < ctx.named_level("ban"):
        raise ctx.fail("5.5.3", "sender's power level is below the ban level (unban)")
    # 5.5.4
    if sender_level >= ctx.named_level("kick") and ctx.power(state_key) < sender_level:
        return
    # 5.5.5
    raise ctx.fail("5.5.5", "sender may not kick the target user")


def _check_ban(ctx: AuthContext, state_key: str) -> None:
    """Rule 5.6, ``membership`` is ``ban``.

    1. ``sender`` is not joined: reject.
    2. ``sender``'s level >= ban level and target's level < ``sender``'s: allow.
    3. Otherwise reject.
    """
    # 5.6.1
    if ctx.membership(ctx.sender) != JOIN:
        raise ctx.fail("5.6.1", "sender is not joined to the room")
    # 5.6.2
    sender_level = ctx.power(ctx.sender)
    if sender_level >= ctx.named_level("ban") and ctx.power(state_key) < sender_level:
        return
    # 5.6.3
    raise ctx.fail("5.6.3", "sender may not ban the target user")


def _check_knock(ctx: AuthContext, state_key: str) -> None:
    """Rule 5.7, ``membership`` is ``knock``.

    1. ``join_rule`` is anything but ``knock`` or ``knock_restricted``: reject.
    2. ``sender`` does not match ``state_key``: reject.
    3. ``sender``'s membership is not ``ban``, ``invite`` or ``join``: allow.
    4. Otherwise reject.
    """
    # 5.7.1
    join_rule = ctx.join_rule()
    knockable = join_rule == "knock" or (
        join_rule == "knock_restricted" and ctx.rv.knock_restricted_join_rule
    )
    if not knockable:
        raise ctx.fail("5.7.1", f"join_rule {join_rule!r} does not allow knocking")
    # 5.7.2
    if ctx.sender != state_key:
        raise ctx.fail("5.7.2", "sender does not match state_key")
    # 5.7.3
    current = ctx.membership(ctx.sender)
    if current not in (BAN, INVITE, JOIN):
        return
    # 5.7.4
    raise ctx.fail("5.7.4", f"cannot knock with membership {current!r}")
