"""Who may use the JSON-RPC edge, decided from request headers the way geth decides.

The threat is a web page in the node operator's browser: the browser will send requests
to ``http://127.0.0.1:8545`` for any page it shows, with the page's Origin, and a DNS
name the attacker controls can be made to resolve to 127.0.0.1 (DNS rebinding). So:

- A POST must carry a JSON Content-Type. A page can send a "simple" cross-site POST
  (``text/plain``, no CORS preflight) but never one with ``application/json`` without
  asking first (a preflight), which the CORS rules below refuse.
- The ``Host`` header must name an allowed virtual host (default ``localhost``), or be
  an IP address: a rebinding page's requests carry the attacker's DNS name as Host, and
  an IP literal cannot be rebound.
- CORS headers go only to listed origins (none by default), and WebSocket handshakes
  that carry an Origin (every browser's do) must come from an allowed origin (the
  localhost origins by default). Programs send no Origin and are not browsers' victims.

Transport-free: pure functions of header values, used by ``server``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection
from urllib.parse import urlsplit

#: geth's accepted request types (rpc/http.go), from the JSON-RPC over HTTP draft.
JSON_CONTENT_TYPES = frozenset(
    {"application/json", "application/json-rpc", "application/jsonrequest"}
)


def content_type_is_json(header: str | None) -> bool:
    """``application/json`` (or a JSON-RPC variant), with or without parameters."""
    if not header:
        return False
    media_type = header.split(";", 1)[0].strip().lower()
    return media_type in JSON_CONTENT_TYPES


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def host_without_port(host_header: str) -> str:
    """``localhost:8545`` → ``localhost``; ``[::1]:8545`` and ``[::1]`` → ``::1``; a bare
    IPv6 literal stays whole."""
    host = host_header.strip()
    if host.startswith("["):
        closing = host.find("]")
        return host[1:closing] if closing > 0 else host
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


def host_allowed(host_header: str | None, vhosts: Collection[str]) -> bool:
    """geth's ``--http.vhosts`` rule: an IP-literal Host always passes, ``*`` lets every
    Host pass, otherwise the name (without port, any case) must be listed. A request
    without a Host header passes only under ``*``."""
    if "*" in vhosts:
        return True
    if not host_header:
        return False
    host = host_without_port(host_header)
    if _is_ip_literal(host):
        return True
    return host.lower() in {vhost.lower() for vhost in vhosts}


def _origin_parts(origin: str) -> tuple[str, str, str] | None:
    """(scheme, hostname, port) of an origin or of an origin rule; a rule may leave the
    scheme out (``localhost:3000``) or the port (``http://localhost``)."""
    text = origin.strip().lower()
    if not text:
        return None
    if "://" not in text:
        text = "//" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname or parts.path not in ("", "/") or parts.query or parts.username:
        return None
    return parts.scheme, parts.hostname, "" if port is None else str(port)


def origin_allowed(origin: str, rules: Collection[str]) -> bool:
    """geth's ``--ws.origins`` rule, also used for ``--http-corsdomain``: ``*`` allows
    every origin; a rule matches when its scheme, hostname and port match the origin's,
    a part the rule leaves out matching anything. An origin that is not a URL (such as
    ``null`` from a sandboxed page) matches only ``*``."""
    if "*" in rules:
        return True
    browser = _origin_parts(origin)
    if browser is None or not browser[0]:
        return False
    for rule in rules:
        allowed = _origin_parts(rule)
        if allowed is None:
            continue
        if all(want in ("", have) for want, have in zip(allowed, browser, strict=True)):
            return True
    return False
