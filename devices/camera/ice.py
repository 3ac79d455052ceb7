"""ICE details for the camera's calls: which host addresses are offered, and Matrix
``m.call.candidates`` entries as aiortc candidates.

aiortc's ``RTCConfiguration`` has no host-address option, and aioice offers every address of every
interface except 127.0.0.1 (slow and leaky on a multi-homed Pi, useless for loopback tests).
aioice asks its module function ``aioice.ice.get_host_addresses()`` when a connection gathers;
``restrict_host_addresses()`` installs (once) a wrapper of that function which answers the hosts
held in a ContextVar, and the caller sets that variable around ``setLocalDescription()``. Tasks
copy the context when they are created, so the gathering tasks aiortc starts inside the block
see the value: each camera's ``ice_hosts`` apply to its own peer connections only, and other
aiortc users in the process keep aioice's own choice. (Filtering candidates out of the SDP
instead would still bind and check from every interface, and could never add loopback.)
"""

from __future__ import annotations

import contextlib
import contextvars
import ipaddress
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import aioice.ice
import ifaddr
from aiortc import RTCIceCandidate
from aiortc.sdp import candidate_from_sdp

log = logging.getLogger(__name__)

_ICE_HOSTS: contextvars.ContextVar[tuple[str, ...] | None] = contextvars.ContextVar(
    "edgehs_camera_ice_hosts", default=None)


def host_addresses(hosts: Sequence[str], use_ipv4: bool = True,
                   use_ipv6: bool = True) -> list[str]:
    """The addresses for ``hosts``: IP addresses as they are, interface names resolved."""
    out: list[str] = []
    adapters = None
    for host in hosts:
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            adapters = adapters if adapters is not None else ifaddr.get_adapters()
            for adapter in adapters:
                if host not in (adapter.name, adapter.nice_name):
                    continue
                for ip in adapter.ips:
                    if isinstance(ip.ip, str) and use_ipv4:
                        out.append(ip.ip)
                    elif isinstance(ip.ip, tuple) and use_ipv6 and ip.ip[2] == 0:
                        out.append(ip.ip[0])  # global IPv6 (link-local needs a scope id)
            continue
        if (addr.version == 4 and use_ipv4) or (addr.version == 6 and use_ipv6):
            out.append(str(addr))
    return list(dict.fromkeys(out))


def _install_host_filter() -> None:
    original = aioice.ice.get_host_addresses
    if getattr(original, "edgehs_filter", False):
        return

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        hosts = _ICE_HOSTS.get()
        if hosts is None:
            return original(use_ipv4=use_ipv4, use_ipv6=use_ipv6)
        addresses = host_addresses(hosts, use_ipv4, use_ipv6)
        if not addresses:
            log.warning("ice_hosts %s give no address now: the call cannot connect",
                        ", ".join(hosts))
        return addresses

    get_host_addresses.edgehs_filter = True  # type: ignore[attr-defined]
    aioice.ice.get_host_addresses = get_host_addresses


@contextlib.contextmanager
def restrict_host_addresses(hosts: Sequence[str]) -> Iterator[None]:
    """ICE gathering started inside this block offers ``hosts`` only (empty: aioice's choice)."""
    _install_host_filter()
    token = _ICE_HOSTS.set(tuple(hosts) if hosts else None)
    try:
        yield
    finally:
        _ICE_HOSTS.reset(token)


def candidate_from_matrix(entry: dict[str, Any]) -> RTCIceCandidate | None:
    """One ``m.call.candidates`` entry as aiortc's candidate; None is end-of-candidates."""
    text = entry.get("candidate")
    if not isinstance(text, str):
        raise ValueError("candidate must be a string")
    if text.strip() == "":
        return None
    try:
        candidate = candidate_from_sdp(text.removeprefix("a=").removeprefix("candidate:"))
    except (AssertionError, ValueError, IndexError) as exc:  # aiortc asserts on short lines
        raise ValueError(f"not an ICE candidate: {text!r}") from exc
    mid, index = entry.get("sdpMid"), entry.get("sdpMLineIndex")
    candidate.sdpMid = mid if isinstance(mid, str) else None
    candidate.sdpMLineIndex = int(index) if isinstance(index, int | float) else None
    if candidate.sdpMid is None and candidate.sdpMLineIndex is None:
        raise ValueError("candidate needs sdpMid or sdpMLineIndex")
    return candidate
