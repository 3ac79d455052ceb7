"""Explicit wiring: every store and service built once, passed to whoever needs it."""

import logging
import secrets
from pathlib import Path

import aiohttp
from signedjson.types import SigningKey

from edgehs.config import Config
from edgehs.protocol.signing import decode_signing_key, encode_signing_key, generate_signing_key
from edgehs.service.account_data import AccountDataService
from edgehs.service.appservice.ephemeral import PresenceStream, ReceiptStream, TypingStream
from edgehs.service.appservice.pusher import AppServicePusher
from edgehs.service.appservice.queries import AppServiceQueries
from edgehs.service.appservice.registration import AppServiceRegistrations
from edgehs.service.client_events import ClientEventFormatter
from edgehs.service.client_ips import ClientIps
from edgehs.service.cross_signing import CrossSigningService
from edgehs.service.deactivation import DeactivationService
from edgehs.service.device_management import DeviceService
from edgehs.service.directory import DirectoryService
from edgehs.service.event_stream import EventStreamService
from edgehs.service.events import EventService
from edgehs.service.federation.keys import ServerKeys
from edgehs.service.filters import FilterService
from edgehs.service.guests import GuestService
from edgehs.service.hierarchy import HierarchyService
from edgehs.service.initial_sync import InitialSyncService
from edgehs.service.keys import KeyService
from edgehs.service.media import MediaService
from edgehs.service.messages import MessagesService
from edgehs.service.notifier import Notifier
from edgehs.service.openid import OpenIdService
from edgehs.service.outbox import OutboxSender
from edgehs.service.presence import PresenceService
from edgehs.service.profile import ProfileService
from edgehs.service.push import PushService
from edgehs.service.push_evaluator import PushEvaluator
from edgehs.service.push_gateway import PusherService, PushGateway
from edgehs.service.ratelimit import RateLimiter
from edgehs.service.receipts import ReceiptService
from edgehs.service.reports import ReportService
from edgehs.service.room_keys import RoomKeyService
from edgehs.service.room_state import RoomStateService
from edgehs.service.room_summary import RoomSummaryService
from edgehs.service.rooms import RoomService
from edgehs.service.search import SearchService
from edgehs.service.search_query import search_rows
from edgehs.service.send import SendService
from edgehs.service.sliding_sync import SlidingSyncService
from edgehs.service.sync import SyncService
from edgehs.service.sync_e2ee import E2eeSync
from edgehs.service.threads import ThreadService
from edgehs.service.to_device import ToDeviceService
from edgehs.service.typing import TypingService
from edgehs.service.uia import UiaSessions
from edgehs.service.upgrade import UpgradeService
from edgehs.service.user_directory import UserDirectoryService
from edgehs.service.users import UserService
from edgehs.service.visibility import Visibility
from edgehs.service.voip import TurnService
from edgehs.store.account_data import AccountDataStore, FilterStore, ProfileFieldStore, ReceiptStore
from edgehs.store.appservice_room_list import AppServiceRoomListStore
from edgehs.store.appservices import AppServiceStore
from edgehs.store.db import Database
from edgehs.store.events import EventStore
from edgehs.store.keys import KeyStore
from edgehs.store.media import MediaFiles, MediaStore
from edgehs.store.outbox import OutboxStore
from edgehs.store.presence import PresenceStore
from edgehs.store.push import PushStore
from edgehs.store.reports import ReportStore
from edgehs.store.room_keys import RoomKeyStore
from edgehs.store.rooms import MemberStore, RoomStore
from edgehs.store.search import SearchStore
from edgehs.store.server_keys import ServerKeyStore
from edgehs.store.state import StateStore
from edgehs.store.streams import StreamIdGenerator
from edgehs.store.threads import ThreadStore
from edgehs.store.to_device import ToDeviceStore
from edgehs.store.user_directory import UserDirectoryStore
from edgehs.store.users import UserStore
from edgehs.store.visibility import VisibilityStore
from edgehs.store.writer_lock import DataDirLock

log = logging.getLogger(__name__)

HTTP_CONNECTIONS = 100  # open connections of the outbound client, all destinations together
HTTP_PER_HOST = 10  # of them to one host


def load_or_create_signing_key(path: Path) -> SigningKey:
    """Read the server's signing key, creating it (mode 0600) on first run."""
    if path.exists():
        return decode_signing_key(path.read_text())
    key = generate_signing_key("a_" + secrets.token_hex(2))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = path.open("x")
    path.chmod(0o600)
    with fd:
        fd.write(encode_signing_key(key) + "\n")
    return key


class HomeServer:
    """Everything the server is made of. Built by :func:`HomeServer.start`."""

    def __init__(self, config: Config, lock: DataDirLock | None = None) -> None:
        self.config = config
        self.db = Database(config.database_path)
        self._lock = lock  # the data dir's writer lock, when the caller took it already
        self.http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Take the data dir's writer lock (``DataDirLocked`` if another process holds it),
        open the database and build everything; on any failure (e.g. an invalid registration
        file) close what was opened, so no database thread outlives it."""
        if self._lock is None or not self._lock.held:
            self._lock = DataDirLock.acquire(self.config.data_dir)
        try:
            await self.db.open()
            try:
                await self._build()
            except BaseException:
                await self._close_http()
                await self.db.close()
                raise
        except BaseException:
            self._lock.release()
            raise

    async def _close_http(self) -> None:
        if self.http is not None:
            await self.http.close()
            self.http = None

    async def _build(self) -> None:
        config = self.config
        # The one outbound HTTP client: appservice transactions and queries, push gateways
        # (and the federation sender next) share its connection pool, so connections to a
        # destination are reused. Each caller sets its own timeout per request.
        self.http = http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=HTTP_CONNECTIONS, limit_per_host=HTTP_PER_HOST)
        )
        self.signing_key = load_or_create_signing_key(config.signing_key_path)
        self.event_store = EventStore(self.db)
        self.state_store = StateStore(self.db)
        self.room_store = RoomStore(self.db)
        self.member_store = MemberStore(self.db)
        self.user_store = UserStore(self.db)
        self.streams = await StreamIdGenerator.load(self.db)
        self.notifier = Notifier(self.streams.current)
        self.events = EventService(
            config.server_name, self.signing_key, self.db, self.event_store, self.state_store,
            self.room_store, self.member_store, self.streams, self.notifier,
        )
        # This server's signing keys: /key/v2/server and `edgehs rotate-key`; a rotation
        # switches every signer (the event service) to the new key at once.
        self.server_keys = ServerKeys(config.server_name, self.signing_key,
                                      config.signing_key_path, ServerKeyStore(self.db),
                                      config.key_validity_period_ms)
        self.server_keys.listeners.append(self._use_signing_key)
        self.devices = DeviceService(self.user_store, self.events)
        self.users = UserService(config.server_name, self.user_store, self.devices)
        self.uia = UiaSessions()
        self.client_ips = ClientIps(self.user_store)
        self.rooms = RoomService(
            config.server_name, self.events, self.room_store, self.member_store,
            self.user_store, config.default_room_version,
        )
        # Guest accounts: joins only where m.room.guest_access allows, removed when it ends.
        self.guests = GuestService(config.allow_guest_access, self.users, self.user_store,
                                   self.events, self.member_store)
        self.rooms.guests = self.guests
        self.events.after_send.append(self.guests.after_send)
        self.account_data_store = AccountDataStore(self.db)
        self.account_data = AccountDataService(self.events, self.account_data_store)
        self.receipt_store = ReceiptStore(self.db)
        self.filter_store = FilterStore(self.db)
        self.filters = FilterService(self.filter_store)
        self.formatter = ClientEventFormatter(self.event_store, self.room_store)
        self.visibility = Visibility(self.member_store, self.event_store, self.state_store,
                                     VisibilityStore(self.db))
        self.formatter.visibility = self.visibility  # aggregations show visible children only
        self.formatter.erasures = self.user_store.erased_at  # erased senders' events redacted
        self.room_state = RoomStateService(self.events, self.event_store, self.state_store,
                                           self.visibility)
        self.typing = TypingService(self.notifier)
        self.sync = SyncService(
            self.event_store, self.state_store, self.member_store, self.account_data_store,
            self.receipt_store, self.typing, self.formatter, self.notifier,
        )
        self.sync.visibility = self.visibility
        # The deprecated /initialSync, room initialSync and /events (room previews too).
        self.initial_sync = InitialSyncService(
            self.event_store, self.state_store, self.member_store, self.room_store,
            self.account_data_store, self.receipt_store, self.visibility, self.formatter,
            self.notifier,
        )
        self.event_stream = EventStreamService(
            self.event_store, self.member_store, self.account_data_store, self.receipt_store,
            self.typing, self.visibility, self.formatter, self.notifier,
        )
        enabled = config.rate_limits_enabled
        self.rc_message = RateLimiter(config.rc_message, enabled)
        self.rc_login = RateLimiter(config.rc_login, enabled)
        self.rc_registration = RateLimiter(config.rc_registration, enabled)
        # Profiles, receipts and read markers.
        self.profile = ProfileService(
            config.server_name, self.user_store, ProfileFieldStore(self.db), self.member_store,
            self.event_store, self.events, self.rooms,
        )
        self.deactivation = DeactivationService(self.rooms, self.profile, self.devices)
        self.receipts = ReceiptService(
            self.events, self.event_store, self.receipt_store, self.account_data_store,
            self.visibility,
        )
        # History, relations, aliases and the room directory.
        self.messages = MessagesService(
            self.event_store, self.state_store, self.visibility, self.formatter, self.notifier,
        )
        self.directory = DirectoryService(
            config.server_name, self.events, self.event_store, self.state_store,
            self.room_store, self.member_store, self.visibility,
            AppServiceRoomListStore(self.db),
        )
        self.send = SendService(self.events, self.visibility, self.rooms, self.directory)
        # The media repository.
        self.media_store = MediaStore(self.db, MediaFiles(config.media_store_path))
        self.media = MediaService(config.server_name, config.max_upload_size, self.media_store)
        # Application service registrations: the files (all valid, or ConfigError) plus those
        # added at run time by the legacy register endpoint.
        self.appservice_store = AppServiceStore(self.db)
        self.as_registrations = AppServiceRegistrations(
            config.server_name, self.appservice_store, self.user_store,
        )
        self.appservices = await self.as_registrations.load(config.app_service_config_files)
        # Requests to application services: ping, user/alias queries, third-party lookups.
        self.as_queries = AppServiceQueries(self.appservices, http)
        self.rooms.as_queries = self.as_queries
        self.directory.as_queries = self.as_queries
        # The durable outbox and the appservice pusher: the write path queues a row per
        # interested service in each event's transaction; typing, receipts and presence are
        # built into its transactions from their streams (the outbound senders are all
        # registered with the outbox below, in one place).
        self.outbox = OutboxSender(OutboxStore(self.db))
        self.as_pusher = AppServicePusher(
            self.appservices, http, self.event_store, self.member_store, self.room_store,
            self.formatter, self.outbox,
        )
        self.events.fanouts.append(self.as_pusher.destinations_for_event)
        self.events.outbox_wake = self.outbox.wake
        self.notifier.add_edu_listener(self.as_pusher.on_edu)
        # Send-to-Device messaging: device inboxes read by /sync, or the outbox for the users
        # of a service that receives them by push.
        self.to_device_store = ToDeviceStore(self.db)
        self.notifier.to_device_position = await self.to_device_store.current_position()
        self.to_device = ToDeviceService(config.server_name, self.db, self.appservices,
                                         self.notifier)
        self.to_device.outbox_wake = self.outbox.wake
        self.sync.e2ee = E2eeSync(self.to_device_store)
        # End-to-end encryption keys and cross-signing; device list changes in /sync.
        self.key_store = KeyStore(self.db)
        self.keys = KeyService(config.server_name, self.db, self.key_store, self.member_store,
                               self.events)
        self.cross_signing = CrossSigningService(self.key_store, self.events)
        self.sync.e2ee.keys = self.keys
        # Server-side key backups.
        self.room_keys = RoomKeyService(self.db, RoomKeyStore(self.db))
        # Push: rules evaluated for every event in its transaction, counts in /sync,
        # /notifications, pushers and delivery to push gateways through the outbox.
        self.push_store = PushStore(self.db)
        self.push = PushService(self.push_store, self.events, self.event_store,
                                self.member_store, self.formatter)
        self.rooms.join_hooks.append(self.push.copy_rules_to_upgraded_room)
        self.pushers = PusherService(self.db, self.push_store)
        self.push_gateway = PushGateway(http, self.pushers, self.push_store, self.event_store,
                                        self.state_store, self.push.unread_total)
        self.receipts.pushers = self.pushers
        self.events.event_rows.append(PushEvaluator(
            config.server_name, self.event_store, self.push, self.pushers).prepare)
        self.sync.push = self.push
        # Spaces (/hierarchy), threads (/threads) and room upgrades.
        self.hierarchy = HierarchyService(self.events, self.event_store, self.state_store,
                                          self.room_store, self.member_store, self.directory)
        self.threads = ThreadService(ThreadStore(self.db), self.event_store, self.visibility,
                                     self.formatter)
        self.upgrade = UpgradeService(self.events, self.event_store, self.state_store,
                                      self.member_store, self.rooms)
        # Simplified sliding sync (MSC4186) for Element X; connection state in memory only.
        self.sliding_sync = SlidingSyncService(
            self.event_store, self.state_store, self.member_store, self.account_data_store,
            self.receipt_store, self.typing, self.to_device_store, self.formatter, self.notifier,
        )
        self.sliding_sync.push = self.push
        self.sliding_sync.builder.visibility = self.visibility
        self.sliding_sync.extensions.push = self.push
        self.sliding_sync.extensions.keys = self.keys
        # Presence in memory (explicit changes persisted), m.presence in /sync and to
        # appservices; TURN credentials for calls.
        self.presence = PresenceService(config.server_name, PresenceStore(self.db),
                                        self.notifier, enabled=config.presence_enabled)
        await self.presence.load()
        self.sync.presence = self.presence
        self.initial_sync.presence = self.presence
        self.event_stream.presence = self.presence
        self.events.fanouts.append(self.presence.activity_from_event)
        self.notifier.add_edu_listener(self.presence.on_edu)
        self.presence.listeners.append(self.as_pusher.on_presence)
        self.presence.start()
        self.turn = TurnService(config.turn_uris, config.turn_shared_secret,
                                config.turn_username, config.turn_password,
                                config.turn_user_lifetime_ms)
        # Full-text /search (FTS5 rows written in each event's transaction), the user
        # directory, mutual rooms and content reports.
        self.search = SearchService(SearchStore(self.db), self.event_store, self.state_store,
                                    self.member_store, self.visibility, self.messages,
                                    self.formatter)
        self.events.event_rows.append(search_rows)
        self.user_directory = UserDirectoryService(UserDirectoryStore(self.db))
        self.reports = ReportService(ReportStore(self.db), self.event_store, self.room_store,
                                     self.member_store, self.user_store, self.visibility)
        # OpenID tokens (in memory: a restart invalidates them) and room summaries, MSC3266.
        self.openid = OpenIdService(config.server_name)
        self.room_summary = RoomSummaryService(self.events, self.room_store, self.member_store,
                                               self.directory, self.hierarchy)
        # Outbound delivery: every sender behind the one outbound interface, wired here.
        self.as_pusher.set_edu_streams([
            TypingStream(self.as_pusher, self.typing),
            ReceiptStream(self.as_pusher, self.receipt_store, self.notifier),
            PresenceStream(self.as_pusher, self.presence),
        ])
        self.outbox.register("as", self.as_pusher)
        self.outbox.register("push", self.push_gateway)
        await self.outbox.start()

    def _use_signing_key(self, key: SigningKey) -> None:
        self.signing_key = key
        self.events.signing_key = key

    async def stop(self) -> None:
        try:
            await self.presence.close()
            await self.outbox.stop()
            await self._close_http()
            self.typing.close()
            await self.db.close()
        finally:  # the database is closed (or its process ends): the next writer may start
            if self._lock is not None:
                self._lock.release()
