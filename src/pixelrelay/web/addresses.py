"""Who is asking: the client's IP behind trusted proxies, and whether a peer is one."""

from __future__ import annotations

import ipaddress
from functools import lru_cache

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=64)
def _networks(trusted: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(t.strip(), strict=False) for t in trusted if t.strip())


def _ip(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not text:
        return None
    # An address is at most 45 characters (IPv6 with IPv4 tail) plus brackets and spaces;
    # longer text is no address, and must not fill the cache below.
    return _parse_ip(text) if len(text) <= 64 else None


# Every request reads its client address (the credential guard, the tag); ipaddress costs
# ~8 µs a parse, and the same few peers (a proxy, the shop's backend) recur.
@lru_cache(maxsize=4096)
def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None


def _trusted(addr: ipaddress.IPv4Address | ipaddress.IPv6Address,
             nets: tuple[IPNetwork, ...]) -> bool:
    return any(addr.version == n.version and addr in n for n in nets)


def client_ip(peer: str | None, forwarded_for: str | None,
              trusted_proxies: tuple[str, ...]) -> str | None:
    """The visitor's IP: the peer, unless the peer is a trusted proxy; then the right-most
    X-Forwarded-For entry that is not itself a trusted proxy. Entries left of an untrusted
    one were written by the client and could be anything, so they are never read."""
    addr = _ip(peer)
    if addr is None:
        return None
    nets = _networks(trusted_proxies)
    if not forwarded_for or not _trusted(addr, nets):
        return str(addr)
    for hop in reversed(forwarded_for.split(",")):
        hop_addr = _ip(hop)
        if hop_addr is None:
            return str(addr)  # a garbled chain: trust only what we saw ourselves
        if not _trusted(hop_addr, nets):
            return str(hop_addr)
        addr = hop_addr
    return str(addr)


def peer_is_trusted(peer: str | None, trusted_proxies: tuple[str, ...]) -> bool:
    addr = _ip(peer)
    return addr is not None and _trusted(addr, _networks(trusted_proxies))
