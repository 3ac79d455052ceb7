"""Simplified sliding sync (MSC4186, ``org.matrix.simplified_msc3575``): the sync Element X
uses. See :mod:`edgehs.service.sliding_sync.service`."""

from edgehs.service.sliding_sync.request import SlidingSyncRequest, parse_request
from edgehs.service.sliding_sync.service import SlidingSyncService

__all__ = ["SlidingSyncRequest", "SlidingSyncService", "parse_request"]
