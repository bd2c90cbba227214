"""Which Host headers and browser origins ``panels serve`` answers.

A page that a browser loaded from another site must not reach the workspace:
neither through its own name pointed at this machine (DNS rebinding: the
request's ``Host`` is that name) nor through a websocket it opens to
``localhost`` (its ``Origin`` is that site). Every request whose ``Host``, or
whose ``Origin`` when it has one, is not on the allowed list gets 403 before
any page, websocket or file is served. By default the list holds
``localhost:PORT`` and ``127.0.0.1:PORT``; ``--allow-origin`` adds names.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from tornado.routing import Matcher, Rule
from tornado.web import RequestHandler

__all__ = ["HostList", "install_host_check", "is_loopback"]

LOOPBACK_NAMES = ("localhost", "127.0.0.1")


def is_loopback(address: str) -> bool:
    """Whether listening on ``address`` reaches only this machine."""
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def _split(host: str) -> tuple[str, int | None]:
    """``name[:port]`` (IPv6 in brackets) as ``(lower-case name, port or None)``."""
    parts = urlsplit(f"//{host.strip()}")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"`{host}` has an invalid port; give HOST or HOST:PORT") from exc
    if not parts.hostname or parts.username is not None or parts.path:
        raise ValueError(f"`{host}` is not a host name; give HOST or HOST:PORT")
    return parts.hostname, port


class HostList:
    """The names (with a port, or any port) the server answers to."""

    def __init__(self, port: int, allow_origin: Sequence[str] = ()) -> None:
        names = [f"{name}:{port}" for name in LOOPBACK_NAMES]
        self.entries = [_split(h) for h in (*names, *allow_origin)]

    def allows(self, host: str) -> bool:
        """Whether ``host`` (a ``Host`` header, or an origin's ``name[:port]``) is allowed."""
        try:
            name, port = _split(host)
        except ValueError:
            return False
        return self._matches(name, port)

    def _matches(self, name: str, port: int | None) -> bool:
        return any(name == n and p in (None, port) for n, p in self.entries)

    def origin_allowed(self, origin: str) -> bool:
        """Whether a request's ``Origin`` header (``scheme://name[:port]``) is allowed."""
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return False  # "null" (a file or sandboxed page), or not a web origin
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            return False
        return parts.hostname is not None and self._matches(parts.hostname, port)

    def websocket_origins(self) -> list[str]:
        """The list in Bokeh's ``allow_websocket_origin`` form (a name alone: its port 80)."""
        out = []
        for name, port in self.entries:
            shown = f"[{name}]" if ":" in name else name
            out.append(shown if port is None else f"{shown}:{port}")
        return out

    def refusal(self, request: Any) -> str | None:
        """Why ``request`` is refused (its Host or Origin), or None when it is allowed."""
        host = request.headers.get("Host", "")
        if not self.allows(host):
            return (
                f"Host `{host}` is not allowed: this workspace answers to "
                f"{', '.join(self.websocket_origins())}; start `panels serve` with "
                "--allow-origin NAME[:PORT] to add the name browsers use"
            )
        origin = request.headers.get("Origin")
        if origin is not None and not self.origin_allowed(origin):
            return f"Origin `{origin}` is not allowed to use this workspace"
        return None


class _Refused(Matcher):
    """Matches the requests a HostList refuses (and passes the reason on)."""

    def __init__(self, hosts: HostList) -> None:
        self.hosts = hosts

    def match(self, request: Any) -> dict[str, Any] | None:
        return None if self.hosts.refusal(request) is None else {}


class _RefusedHandler(RequestHandler):
    """Answers every refused request with 403 and the reason, as plain text."""

    def initialize(self, hosts: HostList) -> None:
        self.hosts = hosts

    def prepare(self) -> None:
        self.set_status(403)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.finish(f"typed-panels: {self.hosts.refusal(self.request) or 'refused'}\n")


def install_host_check(server: Any, hosts: HostList) -> None:
    """Make the Bokeh ``server`` refuse (403) requests ``hosts`` does not allow.

    The rule goes first in the Tornado application's router, so it sees every
    request: pages, websockets, static files. Fails loudly if the server does
    not have the Tornado application this needs (a Bokeh release that changed it).
    """
    app = getattr(server, "_tornado", None)
    router = getattr(app, "default_router", None)
    if router is None:
        raise RuntimeError("cannot install the Host check on this Bokeh server; not serving")
    rule = router.process_rule(Rule(_Refused(hosts), _RefusedHandler, {"hosts": hosts}))
    router.rules.insert(0, rule)
