"""The one outbound interface: what the outbox hands to whoever delivers to a destination.

Every outbound destination -- an application service (``as:<id>``), a push gateway pusher
(``push:<id>``) and, next, a federation peer -- is reached through an :class:`OutboundSender`
registered with the outbox (``service.outbox.OutboxSender``) for the destination's kind, once,
in ``homeserver.py``. The outbox owns what is common to them: the durable rows, the numbered
transactions, the EDUs built from their streams when a transaction is built, the retry state
and the backoff. A sender only turns one built :class:`Transaction` into its wire format and
says whether the destination took it (:attr:`Delivery.SENT`) or it must be retried unchanged
(:attr:`Delivery.RETRY`).

EDUs (typing, receipts, presence, ...) are not stored per destination: an :class:`EduStream`
of the sender says which of its EDUs a destination gets between two positions of the stream.
The outbox remembers, per destination and stream, the position the destination acknowledged
(persisted when a transaction is acknowledged), and the positions a transaction in flight was
built up to (so a retry rebuilds the same range).
"""

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from edgehs.store.outbox import OutboxRow
from edgehs.types import JsonDict


class Delivery(enum.Enum):
    SENT = "sent"  # the destination accepted the transaction: it is acknowledged
    RETRY = "retry"  # it did not (network, 5xx, ...): the same transaction is sent again later


class DeliveryFailed(Exception):
    """Raised inside a sender for what is worth retrying; its ``send`` answers RETRY."""


@dataclass(frozen=True)
class Transaction:
    """One transaction to one destination: durable rows (PDUs by event id, to-device messages,
    push payloads) in order, and the EDUs built from the streams for it."""
    txn_id: int
    rows: list[OutboxRow]
    edus: list[JsonDict] = field(default_factory=list)


class EduStream(Protocol):
    """A stream of EDUs, read when a transaction is built.

    ``name`` keys the positions the outbox keeps per destination. A ``durable`` stream's
    positions mean the same after a restart (they are persisted); the positions of a stream
    kept in memory (typing, presence) start over with the process, so after a restart the
    outbox starts every destination at the stream's current position.
    """
    name: str
    durable: bool

    def position(self) -> int:
        """The stream's current position: everything up to it can be read."""

    async def edus(self, destination: str, since: int, upto: int
                   ) -> Sequence[tuple[int, JsonDict]]:
        """The EDUs for ``destination`` of the changes after ``since`` up to ``upto``, each
        with its position, in position order."""


class OutboundSender(Protocol):
    """Delivers built transactions to the destinations of one kind (``<kind>:...``)."""

    def edu_streams(self) -> Sequence[EduStream]:
        """The EDU streams whose EDUs go into this kind's transactions (may be none)."""

    async def send(self, destination: str, txn: Transaction) -> Delivery:
        """Deliver one transaction to one destination; SENT or RETRY."""
