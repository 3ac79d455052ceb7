"""Cross-signing: a user's master, self-signing and user-signing keys, and the signatures
made with them.

https://spec.matrix.org/v1.19/client-server-api/#cross-signing

Signatures are checked with ``protocol.signing`` (signedjson): the self-signing and
user-signing keys must be signed by the master key; an uploaded signature must verify with the
key it names (the self-signing key for one's own devices, a device key for one's own master key,
the user-signing key for another user's master key). Every accepted change is a
``device_list_changes`` row, so the users sharing a room re-query the keys.
"""

from dataclasses import dataclass

import aiosqlite

from edgehs.errors import Codes, MatrixError
from edgehs.protocol.signing import verify_json
from edgehs.service.events import EventService
from edgehs.service.keys import check_signatures, check_string_map, is_user_id, master_public_key
from edgehs.store.keys import (
    KeyStore,
    SignatureRow,
    add_device_list_change,
    add_signature,
    put_cross_signing_key,
)
from edgehs.types import JsonDict

# request field -> usage
FIELDS = {"master_key": "master", "self_signing_key": "self_signing",
          "user_signing_key": "user_signing"}


@dataclass(frozen=True)
class ParsedKey:
    usage: str
    public_key: str
    key: JsonDict


def parse_cross_signing_key(raw: object, field: str, user_id: str) -> ParsedKey:
    """A CrossSigningKey of ``user_id`` with the usage of ``field`` and one ed25519 key."""
    usage = FIELDS[field]
    if not isinstance(raw, dict):
        raise MatrixError(400, Codes.BAD_JSON, f"{field} must be an object")
    if not isinstance(raw.get("user_id"), str) or not isinstance(raw.get("usage"), list):
        raise MatrixError(400, Codes.BAD_JSON, f"{field} needs user_id and usage")
    if raw["user_id"] != user_id:
        raise MatrixError(400, Codes.INVALID_PARAM, f"{field} must be a key of {user_id}")
    if usage not in raw["usage"]:
        raise MatrixError(400, Codes.INVALID_PARAM, f"{field}.usage must contain {usage!r}")
    keys = check_string_map(raw.get("keys"), f"{field}.keys")
    if len(keys) != 1:
        raise MatrixError(400, Codes.INVALID_PARAM, f"{field}.keys must hold exactly one key")
    [(name, public)] = keys.items()
    if name != f"ed25519:{public}" or not public:
        raise MatrixError(400, Codes.INVALID_PARAM,
                          f"{field}.keys must be {{\"ed25519:<public key>\": <public key>}}")
    if "signatures" in raw:
        check_signatures(raw["signatures"], field)
    return ParsedKey(usage, public, raw)


def check_signed_by(obj: JsonDict, user_id: str, public_key: str, what: str) -> None:
    """``obj`` carries a valid signature of ``user_id`` with ``ed25519:public_key``."""
    key_id = f"ed25519:{public_key}"
    if key_id not in obj.get("signatures", {}).get(user_id, {}):
        raise MatrixError(400, Codes.INVALID_SIGNATURE, f"{what} is not signed with {key_id}")
    try:
        verify_json(obj, user_id, key_id, public_key)
    except MatrixError as exc:
        raise MatrixError(400, Codes.INVALID_SIGNATURE, f"{what}: {exc.msg}") from exc
    except (ValueError, TypeError) as exc:  # not encodable as canonical JSON
        raise MatrixError(400, Codes.INVALID_SIGNATURE, f"{what} cannot be verified") from exc


def _unsigned(obj: JsonDict) -> JsonDict:
    return {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}


class CrossSigningService:
    def __init__(self, store: KeyStore, events: EventService) -> None:
        self.store = store
        self.events = events

    async def _current(self, user_id: str) -> dict[str, JsonDict]:
        return (await self.store.get_cross_signing_keys([user_id])).get(user_id, {})

    # --- POST /keys/device_signing/upload ---------------------------------------------------

    async def needs_auth(self, user_id: str, body: JsonDict) -> bool:
        """User-interactive authentication is needed unless the user has no master key yet, or
        the request only repeats the keys already stored."""
        current = await self._current(user_id)
        if "master" not in current:
            return False
        return any(field in body and body[field] != current.get(usage)
                   for field, usage in FIELDS.items())

    async def upload_keys(self, user_id: str, device_ids: list[str], body: JsonDict) -> None:
        parsed = [parse_cross_signing_key(body[f], f, user_id) for f in FIELDS if f in body]
        current = await self._current(user_id)
        master = next((p for p in parsed if p.usage == "master"), None)
        master_pub = master.public_key if master else master_public_key(current.get("master"))
        for key in parsed:
            if key.public_key in device_ids:
                raise MatrixError(403, Codes.FORBIDDEN, "Key ID in use by a device")
            if key.usage == "master":
                continue
            if master_pub is None:
                raise MatrixError(400, Codes.MISSING_PARAM, "No master signing key is available")
            check_signed_by(key.key, user_id, master_pub, f"The {key.usage} key")
        new = [k for k in parsed if current.get(k.usage) != k.key]
        if not new:
            return

        async def write(conn: aiosqlite.Connection, position: int) -> None:
            for key in new:
                await put_cross_signing_key(conn, user_id, key.usage, key.public_key, key.key)
            await add_device_list_change(conn, user_id, position)

        await self.events.run_write(write)

    # --- POST /keys/signatures/upload -------------------------------------------------------

    async def upload_signatures(self, user_id: str, body: JsonDict) -> JsonDict:
        """Store every valid signature; the others are reported per user and key."""
        for target, keys in body.items():
            if not is_user_id(target):
                raise MatrixError(400, Codes.INVALID_PARAM, f"{target!r} is not a user id")
            if not isinstance(keys, dict) or not all(isinstance(o, dict) for o in keys.values()):
                raise MatrixError(400, Codes.BAD_JSON,
                                  f"{target} must map key ids to signed objects")
        rows: list[SignatureRow] = []
        failures: dict[str, dict[str, JsonDict]] = {}
        mine = await self._current(user_id)
        for target, keys in body.items():
            for key_id, signed in keys.items():
                try:
                    rows += await self._check(user_id, mine, target, key_id, signed)
                except MatrixError as exc:
                    failures.setdefault(target, {})[key_id] = {
                        "errcode": str(exc.errcode), "error": exc.msg}
        if rows:
            async def write(conn: aiosqlite.Connection, position: int) -> None:
                for row in rows:
                    await add_signature(conn, row)
                # The signer's devices (and, for signatures on its own keys, everyone sharing a
                # room with it) re-query its keys. Another user's master key signed with our
                # user-signing key concerns only us.
                await add_device_list_change(conn, user_id, position)

            await self.events.run_write(write)
        return {"failures": failures}

    async def _check(self, user_id: str, mine: dict[str, JsonDict], target: str, key_id: str,
                     signed: JsonDict) -> list[SignatureRow]:
        """The new signatures of ``user_id`` on ``target``'s key ``key_id``, verified."""
        sigs = check_signatures(signed.get("signatures"), key_id).get(user_id)
        if not sigs:
            raise MatrixError(400, Codes.INVALID_SIGNATURE, f"No signature by {user_id}")
        theirs = mine if target == user_id else (await self.store.get_cross_signing_keys(
            [target])).get(target, {})
        if target == user_id:
            devices = await self.store.get_device_keys(user_id, [key_id])
            if key_id in devices:  # own device, signed with the self-signing key
                stored = devices[key_id][0]
                signer = master_public_key(mine.get("self_signing"))
                what = f"device {key_id}"
            elif key_id == master_public_key(mine.get("master")):  # own master, by a device
                stored = mine["master"]
                device = next((k.partition(":")[2] for k in sigs
                               if k.partition(":")[2] != key_id), None)
                own = await self.store.get_device_keys(user_id, [device]) if device else {}
                signer = own[device][0]["keys"].get(f"ed25519:{device}") \
                    if device in own else None
                if signer is not None and device is not None:
                    return self._verified(user_id, f"ed25519:{device}", signer, target, key_id,
                                          signed, stored, "the master key")
                raise MatrixError(400, Codes.INVALID_SIGNATURE,
                                  "The master key must be signed by one of your devices")
            else:
                raise MatrixError(404, Codes.NOT_FOUND, f"Unknown key {key_id}")
        else:  # another user's master key, signed with our user-signing key
            if key_id != master_public_key(theirs.get("master")):
                raise MatrixError(404, Codes.NOT_FOUND, f"{target} has no master key {key_id}")
            stored = theirs["master"]
            signer = master_public_key(mine.get("user_signing"))
            what = f"the master key of {target}"
        if signer is None:
            raise MatrixError(400, Codes.INVALID_SIGNATURE,
                              f"You have no key to sign {what} with")
        return self._verified(user_id, f"ed25519:{signer}", signer, target, key_id, signed,
                              stored, what)

    @staticmethod
    def _verified(user_id: str, signer_key_id: str, signer_public: str, target: str,
                  key_id: str, signed: JsonDict, stored: JsonDict, what: str
                  ) -> list[SignatureRow]:
        if _unsigned(signed) != _unsigned(stored):
            raise MatrixError(400, Codes.INVALID_SIGNATURE,
                              f"The signed object is not {what} as stored")
        signature = signed["signatures"][user_id].get(signer_key_id)
        if not isinstance(signature, str):
            raise MatrixError(400, Codes.INVALID_SIGNATURE, f"No signature with {signer_key_id}")
        only = {**signed, "signatures": {user_id: {signer_key_id: signature}}}
        try:
            verify_json(only, user_id, signer_key_id, signer_public)
        except MatrixError as exc:
            raise MatrixError(400, Codes.INVALID_SIGNATURE, f"{what}: {exc.msg}") from exc
        except (ValueError, TypeError) as exc:  # not encodable as canonical JSON
            raise MatrixError(400, Codes.INVALID_SIGNATURE, f"{what} cannot be verified") \
                from exc
        return [SignatureRow(user_id, signer_key_id, target, key_id, signature)]
