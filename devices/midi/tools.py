"""``python -m devices.midi export|replay``: a room's MIDI history <-> a Standard MIDI File.

export -c devices.yaml ROOM out.mid   reads every ``org.edgehs.midi`` event of ROOM (oldest
    first, single messages and batches) through GET /rooms/{roomId}/messages and writes them as
    a type 0 SMF, the time between messages taken from their ``midi_ts``.
replay -c devices.yaml in.mid ROOM    posts the file's messages into ROOM as ``org.edgehs.midi``
    events (batched like a live port), in real time (``--speed 2`` twice as fast) or at once
    (``--no-timing``); ``midi_ts`` = the start of the replay + the message's offset in the file,
    whatever the timing, so exporting the room again gives the same file.

ROOM is a room id, an alias, or a port name from devices.yaml (its room ``#midi_<name>``).
By default both act as a device user with the service's as_token (``--user``, default the
port's user, else the first port's); replay joins that user to ROOM first. With ``--token`` they
act as the normal user owning that access token instead: a replay into a port's room by a member
with enough power is then played to the port's MIDI output.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import mido

from devices.common.config import DeviceConfigError, load_service_config
from devices.common.intent import CLIENT_V3, HomeserverClient, HomeserverError, new_txn_id, q
from devices.midi.config import DEFAULT_MAX_BATCH, DEFAULT_WINDOW_MS, parse_ports
from devices.midi.mapping import (
    EVENT_TYPE,
    ContentError,
    content_to_messages,
    message_to_content,
)
from devices.midi.smf import SmfError, plan_batches, read_file, to_midifile

PAGE = 500


class ToolError(Exception):
    """A failure to report in one line (exit code 1)."""


class Session:
    """Who the tool acts as: a device user through the as_token, or a token's own user."""

    def __init__(self, client: HomeserverClient, user_id: str, masquerade: bool,
                 server_name: str, ports: list[str], window_ms: int, max_batch: int) -> None:
        self.client = client
        self.user_id = user_id
        self.masquerade = masquerade
        self.server_name = server_name
        self.ports = ports
        self.window_ms = window_ms
        self.max_batch = max_batch

    async def call(self, method: str, path: str, retry: bool = False,
                   **kwargs: Any) -> dict[str, Any]:
        return await self.client.request(
            method, CLIENT_V3 + path, user_id=self.user_id if self.masquerade else None,
            retry=retry, **kwargs)

    async def room_id(self, room: str) -> str:
        if room.startswith("!"):
            return room
        alias = room if room.startswith("#") else f"#midi_{room}:{self.server_name}"
        try:
            body = await self.call("GET", f"/directory/room/{q(alias)}")
        except HomeserverError as exc:
            raise ToolError(f"no room {alias} ({exc})") from exc
        return str(body["room_id"])


async def _session(args: argparse.Namespace) -> Session:
    window, max_batch, ports = DEFAULT_WINDOW_MS, DEFAULT_MAX_BATCH, []
    server_name = ""
    url = args.homeserver
    as_token = None
    if args.config is not None:
        config = load_service_config(args.config, "midi")
        port_configs = parse_ports(config.section)
        ports = [p.name for p in port_configs]
        named = [p for p in port_configs if p.name == args.room] or port_configs
        window, max_batch = named[0].batch_window_ms, named[0].max_batch
        server_name, as_token = config.homeserver.server_name, config.appservice.as_token
        url = url or config.homeserver.url
    if url is None:
        raise ToolError("give -c devices.yaml, or --homeserver URL with --token TOKEN")
    if args.window is not None:
        window = args.window
    if args.token:
        client = HomeserverClient(url, args.token, server_name)
        try:
            me = await client.request("GET", f"{CLIENT_V3}/account/whoami", retry=False)
        except HomeserverError as exc:
            await client.close()
            raise ToolError(f"the access token was refused: {exc}") from exc
        user_id = str(me["user_id"])
        server_name = server_name or user_id.split(":", 1)[1]
        return Session(client, user_id, False, server_name, ports, window, max_batch)
    if as_token is None:
        raise ToolError("without -c devices.yaml, --token is needed")
    user = args.user or f"midi_{args.room if args.room in ports else ports[0]}"
    client = HomeserverClient(url, as_token, server_name)
    user_id = user if user.startswith("@") else client.user_id(user)
    return Session(client, user_id, True, server_name, ports, window, max_batch)


async def export(args: argparse.Namespace) -> int:
    s = await _session(args)
    try:
        room_id = await s.room_id(args.room)
        items: list[tuple[mido.Message, int]] = []
        events = bad = 0
        token: str | None = None
        filt = json.dumps({"types": [EVENT_TYPE]})
        while True:
            params = {"dir": "f", "limit": str(PAGE), "filter": filt}
            if token is not None:
                params["from"] = token
            page = await s.call("GET", f"/rooms/{q(room_id)}/messages", params=params)
            chunk = page.get("chunk") or []
            for event in chunk:
                if event.get("type") != EVENT_TYPE or (args.sender and
                                                       event.get("sender") != args.sender):
                    continue
                try:
                    messages = content_to_messages(event.get("content") or {})
                except ContentError:
                    bad += 1
                    continue
                events += 1
                fallback = int(event.get("origin_server_ts", 0))
                items.extend((msg, ts if ts is not None else fallback) for msg, ts in messages)
            token = page.get("end")
            if not chunk or token is None:
                break
        mid = to_midifile(items, title=args.room)
        mid.save(str(args.out))
    finally:
        await s.client.close()
    print(f"wrote {len(items)} MIDI messages from {events} events of {room_id} to {args.out}"
          + (f" ({bad} events were not MIDI and were skipped)" if bad else ""))
    return 0


async def replay(args: argparse.Namespace) -> int:
    timed = read_file(args.file)
    if not timed:
        raise ToolError(f"{args.file} holds no MIDI messages to replay")
    s = await _session(args)
    sent = 0
    try:
        room_id = await s.room_id(args.room)
        if s.masquerade:
            await s.call("POST", f"/join/{q(room_id)}", json={})
        groups = plan_batches(timed, s.window_ms, args.max_batch or s.max_batch)
        base_ms = time.time_ns() // 1_000_000
        started = time.monotonic()
        for group in groups:
            offset = group[0][0] / args.speed
            if not args.no_timing:
                delay = started + offset / 1000 - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            items = [message_to_content(msg, base_ms + round(off / args.speed))
                     for off, msg in group]
            content = items[0] if len(items) == 1 else {"batch": items}
            path = f"/rooms/{q(room_id)}/send/{q(EVENT_TYPE)}/{q(new_txn_id())}"
            await s.call("PUT", path, json=content, retry=True)
            sent += 1
    finally:
        await s.client.close()
    print(f"replayed {len(timed)} MIDI messages from {args.file} into {room_id} as "
          f"{s.user_id} in {sent} events")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devices.midi",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    exp = sub.add_parser("export", help="a room's MIDI events -> a Standard MIDI File")
    rep = sub.add_parser("replay", help="a Standard MIDI File -> MIDI events in a room")
    for p in (exp, rep):
        p.add_argument("-c", "--config", type=Path, help="devices.yaml")
        p.add_argument("--user", help="the device user to act as (default: the port's user)")
        p.add_argument("--token", help="act as this access token's user instead")
        p.add_argument("--homeserver", help="edgehs URL (default: devices.yaml's)")
    exp.add_argument("room", metavar="ROOM", help="room id, #alias or port name")
    exp.add_argument("out", metavar="OUT.mid", type=Path)
    exp.add_argument("--sender", help="only events sent by this user")
    rep.add_argument("file", metavar="IN.mid", type=Path)
    rep.add_argument("room", metavar="ROOM", help="room id, #alias or port name")
    rep.add_argument("--speed", type=float, default=1.0, help="tempo factor (2 = twice as fast)")
    rep.add_argument("--no-timing", action="store_true",
                     help="send everything at once (midi_ts still follow the file)")
    rep.add_argument("--max-batch", type=int, default=None, help="messages per event at most")
    rep.add_argument("--window", type=int, default=None, metavar="MS",
                     help="batch window (default: the port's batch_window_ms)")
    exp.set_defaults(window=None)
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.command == "replay" and not args.speed > 0:
        print("error: --speed must be more than 0", file=sys.stderr)
        return 2
    if args.command == "replay" and (args.max_batch or 1) < 1:
        print("error: --max-batch must be at least 1", file=sys.stderr)
        return 2
    try:
        return asyncio.run(export(args) if args.command == "export" else replay(args))
    except DeviceConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ToolError, SmfError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except HomeserverError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
