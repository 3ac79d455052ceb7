"""Push notifications: push rules, pushers and the notifications list.

https://spec.matrix.org/v1.19/client-server-api/#push-notifications
"""

from aiohttp import web

from edgehs.api.auth import requester
from edgehs.api.keys import hs
from edgehs.api.params import json_body, query_int
from edgehs.errors import Codes, MatrixError


def _rule_path(request: web.Request) -> tuple[str, str]:
    return request.match_info["kind"], request.match_info["ruleId"]


async def get_push_rules(request: web.Request) -> web.Response:
    """GET /pushrules/ — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3pushrules"""
    who = await requester(request)
    ruleset = await hs(request).push.ruleset(who.user_id)
    return web.json_response({"global": ruleset.to_json()})


async def get_global_push_rules(request: web.Request) -> web.Response:
    """GET /pushrules/global/ — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3pushrulesglobal"""
    who = await requester(request)
    ruleset = await hs(request).push.ruleset(who.user_id)
    return web.json_response(ruleset.to_json())


async def get_push_rules_of_kind(request: web.Request) -> web.Response:
    """GET /pushrules/global/{kind}/ — the rules of one kind, in evaluation order.

    Not in the spec's API, which lists all rules (``/pushrules/global/``) or gets one; Synapse
    serves it and clients of its era read it."""
    who = await requester(request)
    kind = request.match_info["kind"]
    rules = (await hs(request).push.ruleset(who.user_id)).to_json()
    if kind not in rules:
        raise MatrixError(400, Codes.INVALID_PARAM, f"Unknown push rule kind {kind!r}")
    return web.json_response(rules[kind])


async def get_push_rule(request: web.Request) -> web.Response:
    """GET /pushrules/global/{kind}/{ruleId} — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3pushrulesglobalkindruleid"""
    who = await requester(request)
    rule = await hs(request).push.get_rule(who.user_id, *_rule_path(request))
    return web.json_response(rule.to_json())


async def put_push_rule(request: web.Request) -> web.Response:
    """PUT /pushrules/global/{kind}/{ruleId} — https://spec.matrix.org/v1.19/client-server-api/#put_matrixclientv3pushrulesglobalkindruleid"""
    who = await requester(request)
    body = await json_body(request, allow_empty=False)
    kind, rule_id = _rule_path(request)
    await hs(request).push.put_rule(who.user_id, kind, rule_id, body,
                                    request.query.get("before"), request.query.get("after"))
    return web.json_response({})


async def delete_push_rule(request: web.Request) -> web.Response:
    """DELETE /pushrules/global/{kind}/{ruleId} — https://spec.matrix.org/v1.19/client-server-api/#delete_matrixclientv3pushrulesglobalkindruleid"""
    who = await requester(request)
    await hs(request).push.delete_rule(who.user_id, *_rule_path(request))
    return web.json_response({})


async def get_push_rule_enabled(request: web.Request) -> web.Response:
    """GET /pushrules/global/{kind}/{ruleId}/enabled — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3pushrulesglobalkindruleidenabled"""
    who = await requester(request)
    rule = await hs(request).push.get_rule(who.user_id, *_rule_path(request))
    return web.json_response({"enabled": rule.enabled})


async def put_push_rule_enabled(request: web.Request) -> web.Response:
    """PUT /pushrules/global/{kind}/{ruleId}/enabled — https://spec.matrix.org/v1.19/client-server-api/#put_matrixclientv3pushrulesglobalkindruleidenabled"""
    who = await requester(request)
    body = await json_body(request, allow_empty=False)
    if "enabled" not in body:
        raise MatrixError(400, Codes.MISSING_PARAM, "Missing parameter: enabled")
    if not isinstance(body["enabled"], bool):
        raise MatrixError(400, Codes.BAD_JSON, "enabled must be a boolean")
    await hs(request).push.set_enabled(who.user_id, *_rule_path(request), body["enabled"])
    return web.json_response({})


async def get_push_rule_actions(request: web.Request) -> web.Response:
    """GET /pushrules/global/{kind}/{ruleId}/actions — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3pushrulesglobalkindruleidactions"""
    who = await requester(request)
    rule = await hs(request).push.get_rule(who.user_id, *_rule_path(request))
    return web.json_response({"actions": rule.to_json()["actions"]})


async def put_push_rule_actions(request: web.Request) -> web.Response:
    """PUT /pushrules/global/{kind}/{ruleId}/actions — https://spec.matrix.org/v1.19/client-server-api/#put_matrixclientv3pushrulesglobalkindruleidactions"""
    who = await requester(request)
    body = await json_body(request, allow_empty=False)
    if "actions" not in body:
        raise MatrixError(400, Codes.MISSING_PARAM, "Missing parameter: actions")
    await hs(request).push.set_actions(who.user_id, *_rule_path(request), body["actions"])
    return web.json_response({})


async def get_notifications(request: web.Request) -> web.Response:
    """GET /notifications — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3notifications"""
    who = await requester(request)
    limit = query_int(request, "limit", 0, minimum=1) or None
    body = await hs(request).push.notifications(
        who.user_id, request.query.get("from"), limit, request.query.get("only"))
    return web.json_response(body)


async def get_pushers(request: web.Request) -> web.Response:
    """GET /pushers — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3pushers"""
    who = await requester(request)
    return web.json_response({"pushers": await hs(request).pushers.get_pushers(who.user_id)})


async def set_pusher(request: web.Request) -> web.Response:
    """POST /pushers/set — https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3pushersset"""
    who = await requester(request)
    body = await json_body(request, allow_empty=False)
    await hs(request).pushers.set_pusher(who.user_id, who.device_id, body)
    return web.json_response({})
