"""Whether a listening address is reachable only from this host: the rule by which the
node refuses unlocked accounts beyond loopback and the manager refuses a Q2T API beyond
loopback without mutual TLS."""

from __future__ import annotations

import ipaddress


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals (127.0.0.0/8, ::1, bracketed or
    not); any other name or address, a wildcard such as 0.0.0.0 included, counts as
    reachable from elsewhere. No name is looked up."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
