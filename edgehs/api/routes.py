"""THE route table, grouped by spec section.

Client-Server endpoints are served under ``/_matrix/client/v3``, the ``r0`` alias and the 2015
``api/v1`` prefix that microcontrollers still post to; a few newer ones only under ``v1``.
"""

from collections.abc import Sequence

from aiohttp import web

from edgehs.api import admin
from edgehs.api.client import (
    account,
    account_data,
    appservice,
    appservice_register,
    directory,
    hierarchy,
    keys,
    legacy,
    login,
    media,
    messages,
    openid,
    presence,
    profile,
    push,
    receipts,
    relations,
    report,
    room_keys,
    room_summary,
    rooms,
    search,
    send,
    server_admin,
    sliding_sync,
    sync,
    thirdparty,
    threads,
    to_device,
    typing,
    upgrade,
    user_directory,
    versions,
    voip,
)
from edgehs.api.federation import keys as federation_keys
from edgehs.api.keys import Handler
from edgehs.api.middleware import error_response
from edgehs.errors import Codes

Route = tuple[str, str, Handler]

CLIENT_PREFIXES = ("/_matrix/client/v3", "/_matrix/client/r0", "/_matrix/client/api/v1")

# Client-Server API, v3 (+ r0 + api/v1).
CLIENT_ROUTES: Sequence[Route] = (
    # Capabilities
    ("GET", "/capabilities", versions.capabilities),
    # Login, logout, registration, account
    ("GET", "/login", login.get_login_flows),
    ("POST", "/login", login.login),
    ("POST", "/logout", login.logout),
    ("POST", "/logout/all", login.logout_all),
    ("POST", "/register", login.register),
    ("GET", "/register/available", login.register_available),
    ("GET", "/account/whoami", account.whoami),
    ("POST", "/account/password", account.change_password),
    ("POST", "/account/deactivate", account.deactivate),
    # Devices
    ("GET", "/devices", account.get_devices),
    ("GET", "/devices/{deviceId}", account.get_device),
    ("PUT", "/devices/{deviceId}", account.put_device),
    ("DELETE", "/devices/{deviceId}", account.delete_device),
    ("POST", "/delete_devices", account.delete_devices),
    # Server administration
    ("GET", "/admin/whois/{userId}", server_admin.whois),
    # Rooms and membership
    ("POST", "/createRoom", rooms.create_room),
    ("POST", "/join/{roomIdOrAlias}", rooms.join),
    ("POST", "/knock/{roomIdOrAlias}", rooms.knock),
    ("POST", "/rooms/{roomId}/join", rooms.join),
    ("POST", "/rooms/{roomId}/invite", rooms.invite),
    ("POST", "/rooms/{roomId}/leave", rooms.leave),
    ("POST", "/rooms/{roomId}/forget", rooms.forget),
    ("POST", "/rooms/{roomId}/kick", rooms.kick),
    ("POST", "/rooms/{roomId}/ban", rooms.ban),
    ("POST", "/rooms/{roomId}/unban", rooms.unban),
    ("GET", "/joined_rooms", rooms.joined_rooms),
    ("GET", "/rooms/{roomId}/members", rooms.members),
    ("GET", "/rooms/{roomId}/joined_members", rooms.joined_members),
    # Room upgrades
    ("POST", "/rooms/{roomId}/upgrade", upgrade.upgrade_room),
    # Events
    ("PUT", "/rooms/{roomId}/send/{eventType}/{txnId}", send.send_message),
    ("POST", "/rooms/{roomId}/send/{eventType}", send.send_message_legacy),
    ("PUT", "/rooms/{roomId}/state/{eventType}", send.put_state),
    ("PUT", "/rooms/{roomId}/state/{eventType}/", send.put_state),
    ("PUT", "/rooms/{roomId}/state/{eventType}/{stateKey}", send.put_state),
    ("GET", "/rooms/{roomId}/state/{eventType}", send.get_state_event),
    ("GET", "/rooms/{roomId}/state/{eventType}/", send.get_state_event),
    ("GET", "/rooms/{roomId}/state/{eventType}/{stateKey}", send.get_state_event),
    ("GET", "/rooms/{roomId}/state", send.get_state),
    ("PUT", "/rooms/{roomId}/redact/{eventId}/{txnId}", send.redact),
    ("POST", "/rooms/{roomId}/redact/{eventId}", send.redact),
    ("GET", "/rooms/{roomId}/event/{eventId}", send.get_event),
    # Sync and filters
    ("GET", "/sync", sync.sync),
    # The deprecated event stream and initial syncs; room previews
    ("GET", "/events", legacy.events),
    ("GET", "/events/{eventId}", legacy.event),
    ("GET", "/initialSync", legacy.initial_sync),
    ("GET", "/rooms/{roomId}/initialSync", legacy.room_initial_sync),
    ("POST", "/user/{userId}/filter", sync.create_filter),
    ("GET", "/user/{userId}/filter/{filterId}", sync.get_filter),
    # Send-to-Device messaging
    ("PUT", "/sendToDevice/{eventType}/{txnId}", to_device.send_to_device),
    # End-to-end encryption keys and cross-signing
    ("POST", "/keys/upload", keys.upload_keys),
    ("POST", "/keys/query", keys.query_keys),
    ("POST", "/keys/claim", keys.claim_keys),
    ("GET", "/keys/changes", keys.key_changes),
    ("POST", "/keys/device_signing/upload", keys.upload_cross_signing_keys),
    ("POST", "/keys/signatures/upload", keys.upload_signatures),
    # Server-side key backups
    ("POST", "/room_keys/version", room_keys.create_version),
    ("GET", "/room_keys/version", room_keys.get_current_version),
    ("GET", "/room_keys/version/{version}", room_keys.get_version),
    ("PUT", "/room_keys/version/{version}", room_keys.put_version),
    ("DELETE", "/room_keys/version/{version}", room_keys.delete_version),
    ("PUT", "/room_keys/keys", room_keys.put_keys),
    ("GET", "/room_keys/keys", room_keys.get_keys),
    ("DELETE", "/room_keys/keys", room_keys.delete_keys),
    ("PUT", "/room_keys/keys/{roomId}", room_keys.put_room_keys),
    ("GET", "/room_keys/keys/{roomId}", room_keys.get_room_keys),
    ("DELETE", "/room_keys/keys/{roomId}", room_keys.delete_room_keys),
    ("PUT", "/room_keys/keys/{roomId}/{sessionId}", room_keys.put_session_key),
    ("GET", "/room_keys/keys/{roomId}/{sessionId}", room_keys.get_session_key),
    ("DELETE", "/room_keys/keys/{roomId}/{sessionId}", room_keys.delete_session_key),
    # History: /messages, /context
    ("GET", "/rooms/{roomId}/messages", messages.messages),
    ("GET", "/rooms/{roomId}/context/{eventId}", messages.context),
    # Aliases, room directory, /publicRooms
    ("PUT", "/directory/room/{roomAlias}", directory.put_alias),
    ("GET", "/directory/room/{roomAlias}", directory.get_alias),
    ("DELETE", "/directory/room/{roomAlias}", directory.delete_alias),
    ("GET", "/rooms/{roomId}/aliases", directory.room_aliases),
    ("GET", "/directory/list/room/{roomId}", directory.get_visibility),
    ("PUT", "/directory/list/room/{roomId}", directory.put_visibility),
    ("PUT", "/directory/list/appservice/{networkId}/{roomId}",
     directory.put_appservice_visibility),
    ("DELETE", "/directory/list/appservice/{networkId}/{roomId}",
     directory.delete_appservice_visibility),
    ("GET", "/publicRooms", directory.get_public_rooms),
    ("POST", "/publicRooms", directory.post_public_rooms),
    # Profile
    ("GET", "/profile/{userId}", profile.get_profile),
    ("GET", "/profile/{userId}/{keyName}", profile.get_profile_field),
    ("PUT", "/profile/{userId}/{keyName}", profile.put_profile_field),
    ("DELETE", "/profile/{userId}/{keyName}", profile.delete_profile_field),
    # Presence and VoIP TURN credentials
    ("GET", "/presence/{userId}/status", presence.get_presence),
    ("PUT", "/presence/{userId}/status", presence.set_presence),
    ("GET", "/voip/turnServer", voip.turn_server),
    # Typing, receipts, read markers
    ("PUT", "/rooms/{roomId}/typing/{userId}", typing.set_typing),
    ("POST", "/rooms/{roomId}/receipt/{receiptType}/{eventId}", receipts.post_receipt),
    ("POST", "/rooms/{roomId}/read_markers", receipts.set_read_markers),
    # Push notifications: push rules, pushers, /notifications
    # The spec's listing paths end in "/"; without it they are unknown endpoints (as in
    # Synapse), so a client that works here works there.
    ("GET", "/pushrules/", push.get_push_rules),
    ("GET", "/pushrules/global/", push.get_global_push_rules),
    ("GET", "/pushrules/global/{kind}/", push.get_push_rules_of_kind),
    ("GET", "/pushrules/global/{kind}/{ruleId}", push.get_push_rule),
    ("PUT", "/pushrules/global/{kind}/{ruleId}", push.put_push_rule),
    ("DELETE", "/pushrules/global/{kind}/{ruleId}", push.delete_push_rule),
    ("GET", "/pushrules/global/{kind}/{ruleId}/enabled", push.get_push_rule_enabled),
    ("PUT", "/pushrules/global/{kind}/{ruleId}/enabled", push.put_push_rule_enabled),
    ("GET", "/pushrules/global/{kind}/{ruleId}/actions", push.get_push_rule_actions),
    ("PUT", "/pushrules/global/{kind}/{ruleId}/actions", push.put_push_rule_actions),
    ("GET", "/pushers", push.get_pushers),
    ("POST", "/pushers/set", push.set_pusher),
    ("GET", "/notifications", push.get_notifications),
    # Account data and tags
    ("GET", "/user/{userId}/account_data/{type}", account_data.get_account_data),
    ("PUT", "/user/{userId}/account_data/{type}", account_data.put_account_data_global),
    ("GET", "/user/{userId}/rooms/{roomId}/account_data/{type}",
     account_data.get_room_account_data),
    ("PUT", "/user/{userId}/rooms/{roomId}/account_data/{type}",
     account_data.put_room_account_data),
    ("GET", "/user/{userId}/rooms/{roomId}/tags", account_data.get_tags),
    ("PUT", "/user/{userId}/rooms/{roomId}/tags/{tag}", account_data.put_tag),
    ("DELETE", "/user/{userId}/rooms/{roomId}/tags/{tag}", account_data.delete_tag),
    # Third-party networks, answered by application services
    ("GET", "/thirdparty/protocols", thirdparty.get_protocols),
    ("GET", "/thirdparty/protocol/{protocol}", thirdparty.get_protocol),
    ("GET", "/thirdparty/location/{protocol}", thirdparty.get_location_by_protocol),
    ("GET", "/thirdparty/user/{protocol}", thirdparty.get_user_by_protocol),
    ("GET", "/thirdparty/location", thirdparty.get_location_by_alias),
    ("GET", "/thirdparty/user", thirdparty.get_user_by_id),
    # Search, user directory, reporting
    ("POST", "/search", search.search),
    ("POST", "/user_directory/search", user_directory.search_users),
    ("POST", "/rooms/{roomId}/report/{eventId}", report.report_event),
    ("POST", "/rooms/{roomId}/report", report.report_room),
    ("POST", "/users/{userId}/report", report.report_user),
    # OpenID tokens for Element Call and widgets
    ("POST", "/user/{userId}/openid/request_token", openid.request_token),
)

# Endpoints that exist only under /_matrix/client/v1.
CLIENT_V1_ROUTES: Sequence[Route] = (
    # Application service ping
    ("POST", "/appservice/{appserviceId}/ping", appservice.ping),
    # Relations
    ("GET", "/rooms/{roomId}/relations/{eventId}", relations.relations),
    ("GET", "/rooms/{roomId}/relations/{eventId}/{relType}", relations.relations),
    ("GET", "/rooms/{roomId}/relations/{eventId}/{relType}/{eventType}", relations.relations),
    # Spaces and threads
    ("GET", "/rooms/{roomId}/hierarchy", hierarchy.hierarchy),
    ("GET", "/rooms/{roomId}/threads", threads.list_threads),
    # Authenticated media
    ("GET", "/media/config", media.config),
    ("GET", "/media/preview_url", media.preview_url),
    ("GET", "/media/download/{serverName}/{mediaId}", media.download),
    ("GET", "/media/download/{serverName}/{mediaId}/{fileName}", media.download),
    ("GET", "/media/thumbnail/{serverName}/{mediaId}", media.thumbnail),
    # Mutual rooms
    ("GET", "/mutual_rooms", user_directory.mutual_rooms),
    # Room summary, v1.15 / MSC3266
    ("GET", "/room_summary/{roomIdOrAlias}", room_summary.room_summary),
)

# The deprecated /_matrix/media/v3 (and r0) endpoints. Served under v1 too, as
# Synapse does, which is where POST /_matrix/media/v1/create lives.
MEDIA_PREFIXES = ("/_matrix/media/v3", "/_matrix/media/r0", "/_matrix/media/v1")
MEDIA_ROUTES: Sequence[Route] = (
    ("POST", "/upload", media.upload),
    ("PUT", "/upload/{serverName}/{mediaId}", media.upload_to),
    ("POST", "/create", media.create),
    ("GET", "/download/{serverName}/{mediaId}", media.download_legacy),
    ("GET", "/download/{serverName}/{mediaId}/{fileName}", media.download_legacy),
    ("GET", "/thumbnail/{serverName}/{mediaId}", media.thumbnail_legacy),
    ("GET", "/config", media.config),
    ("GET", "/preview_url", media.preview_url),
)

# Unprefixed endpoints.
OTHER_ROUTES: Sequence[Route] = (
    ("GET", "/_matrix/client/versions", versions.versions),
    ("GET", "/.well-known/matrix/client", versions.well_known),
    # MSC2666's unstable mutual rooms path, which Synapse serves
    ("GET", "/_matrix/client/unstable/uk.half-shot.msc2666/user/mutual_rooms",
     user_directory.mutual_rooms_unstable),
    # Cross-signing under the unstable prefix it had before v1.1 (MSC1756), which clients of
    # that time still call
    ("POST", "/_matrix/client/unstable/keys/device_signing/upload",
     keys.upload_cross_signing_keys),
    ("POST", "/_matrix/client/unstable/keys/signatures/upload", keys.upload_signatures),
    # Simplified sliding sync, MSC4186 (Element X)
    ("POST", sliding_sync.PATH, sliding_sync.sliding_sync),
    # The 2015 run-time AS registration, admins only
    ("POST", "/_matrix/appservice/v1/register", appservice_register.register),
    # edgehs's own admin API: `edgehs device add` and `register-user` while the server runs
    ("POST", admin.ADMIN_PREFIX + "/devices", admin.add_device),
    ("POST", admin.ADMIN_PREFIX + "/users", admin.register_user),
    ("POST", admin.ADMIN_PREFIX + "/rotate_key", admin.rotate_key),
    # MSC3266's unstable room summary path, which matrix-rust-sdk (Element X) calls while the
    # server does not advertise v1.15
    ("GET", room_summary.UNSTABLE_PATH, room_summary.room_summary),
    # Server-Server OpenID userinfo. There is no federation listener yet, so it is served on
    # this one, under its federation path
    ("GET", "/_matrix/federation/v1/openid/userinfo", openid.userinfo),
    # This server's signing keys, also on this listener until the federation one exists
    ("GET", "/_matrix/key/v2/server", federation_keys.server_keys),
)


async def unrecognized(request: web.Request) -> web.Response:
    """Any other path: 404 M_UNRECOGNIZED, as the spec asks."""
    return error_response(404, Codes.UNRECOGNIZED, "Unrecognized request")


def add_routes(app: web.Application) -> None:
    table: list[web.RouteDef] = []
    for method, path, handler in CLIENT_ROUTES:
        table += [web.route(method, prefix + path, handler) for prefix in CLIENT_PREFIXES]
    for method, path, handler in CLIENT_V1_ROUTES:
        table.append(web.route(method, "/_matrix/client/v1" + path, handler))
    for method, path, handler in MEDIA_ROUTES:
        table += [web.route(method, prefix + path, handler) for prefix in MEDIA_PREFIXES]
    for method, path, handler in OTHER_ROUTES:
        table.append(web.route(method, path, handler))
    app.router.add_routes(table)
