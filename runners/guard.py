"""The target guard: runners must not be pointed at the machine they run on or at its
private network (cloud metadata, admin consoles, databases), unless the deployment says
so. It applies to page URLs (and every request a page makes), webhook URLs and SMTP hosts.

Hostnames are resolved first and every address they resolve to must be public, so a
public name that points at 127.0.0.1 is refused too. A browser tab's checks share one
short-lived resolution per host (``runners.resolution_cache``): the egress proxy then
connects to addresses the request filter approved, and each host is looked up once.

Each refusal is counted once, where it is raised, in a :class:`RefusalCount` that every
copy of one runner's guard shares (``runledger_runner_targets_refused_total``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import re
import socket
import time
import unicodedata
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from encodings import idna
from typing import Literal
from urllib.parse import SplitResult, unquote, urlsplit

from runners.egress_proxy import Connect
from runners.errors import TargetInvalid, TargetRefused
from runners.request_filter import RequestFilter
from runners.resolution_cache import Clock, ResolutionCache

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# (host, port) -> the addresses the host resolves to, as text.
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
# (address or host, port) -> an open TCP connection.
Opener = Callable[[str, int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]

# What a refused target was for: a page a job opens (a scan's, a case's, a crawled link),
# a request a page made (its redirects too) or a connection of its egress proxy, a
# webhook (Slack's too) or an SMTP server. A bounded label: never the host or address.
TargetUse = Literal["page", "subresource", "webhook", "smtp"]
TARGET_USES: tuple[TargetUse, ...] = ("page", "subresource", "webhook", "smtp")

# How long ``TargetGuard.connect`` waits for one address to accept.
CONNECT_TIMEOUT_S = 15.0

WEB_SCHEMES = frozenset({"http", "https"})
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
# One part of an IPv4 address as browsers read it: hexadecimal, octal or decimal.
_IPV4_PART = re.compile(r"0[xX][0-9a-fA-F]*|0[0-7]*|[1-9][0-9]*")
# Full stops that IDNA reads as the dot between labels ("127。0。0。1").
_IDEOGRAPHIC_STOPS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})


async def resolve_system(host: str, port: int) -> Sequence[str]:
    """Resolve ``host`` with the system resolver; raises ``TargetInvalid`` if it cannot."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise TargetInvalid(f"cannot resolve host {host!r}: {exc}") from exc
    return sorted({str(info[4][0]) for info in infos})


def refusal_reason(address: IPAddress) -> str | None:
    """Why runners may not reach ``address`` (``"loopback"``, ``"private"``, ...), or None
    if it is a public address. IPv4-mapped and 6to4/Teredo IPv6 forms are unwrapped."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address.teredo is not None:
            embedded = address.teredo[1]
        if embedded is not None:
            return refusal_reason(embedded)
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        # fec0::/10: deprecated, but networks that still number hosts in it are private
        # ones, and Python does not count it as private (nor as not global).
        ("site-local", isinstance(address, ipaddress.IPv6Address) and address.is_site_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        # Shared address space (100.64/10), benchmarking ranges and the like.
        ("not globally routable", not address.is_global),
    )
    for reason, hit in checks:
        if hit:
            return reason
    return None


def _split(url: str) -> SplitResult:
    """``urlsplit(url)``; TargetInvalid instead of the parser's ValueError."""
    try:
        return urlsplit(url)
    except ValueError as exc:
        raise TargetInvalid(f"target {url!r} is not a URL: {exc}") from exc


def _literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return _browser_ipv4(host)


def _browser_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """``host`` as the IPv4 address a browser reads in it (the URL Standard's IPv4
    parser), or None if it is a name: ``127.1``, ``0``, ``2130706433``, ``0x7f000001``,
    ``017700000001`` are all 127.0.0.1 or 0.0.0.0 to Chromium. Parsed here so that the
    verdict never depends on how a resolver treats such names."""
    parts = host.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    if not 1 <= len(parts) <= 4 or not all(_IPV4_PART.fullmatch(part) for part in parts):
        return None
    numbers = []
    for part in parts:
        if part[:2].lower() == "0x":
            numbers.append(int(part[2:] or "0", 16))
        elif len(part) > 1 and part.startswith("0"):
            numbers.append(int(part, 8))
        else:
            numbers.append(int(part))
    *leading, last = numbers
    if any(number > 255 for number in leading) or last >= 256 ** (5 - len(numbers)):
        return None  # not an address; a browser refuses such a URL
    value = last
    for index, number in enumerate(leading):
        value += number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def normalized_host(host: str) -> str:
    """``host`` as a browser's URL parser compares it: brackets, percent-escapes and a
    trailing dot removed, compatibility forms folded (``ｌｏｃａｌｈｏｓｔ`` and
    ``１２７.０.０.１`` are ``localhost`` and ``127.0.0.1`` to Chromium), characters IDNA
    ignores dropped, lower case."""
    name = unicodedata.normalize("NFKC", unquote(host.strip("[]")))
    labels = name.translate(_IDEOGRAPHIC_STOPS).rstrip(".").lower().split(".")
    return ".".join(_nameprep(label) for label in labels)


def _nameprep(label: str) -> str:
    """IDNA's mapping of a label: soft hyphens and zero-width characters dropped, as
    Chromium drops them (``local\\u00adhost`` is ``localhost``). A label IDNA prohibits
    stays as it is: the resolver refuses it."""
    if label.isascii():
        return label
    try:
        return idna.nameprep(label)
    except UnicodeError:
        return label


class RefusalCount:
    """Targets the guard refused, by :data:`TargetUse`. One per runner, given to its
    guard; the guard's copies (one per browser tab) share it, so the runner's
    ``/metrics`` sees every tab's refusals. Call from the event loop's thread only."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = dict.fromkeys(TARGET_USES, 0)

    def add(self, use: TargetUse) -> None:
        self._counts[use] += 1

    def counts(self) -> dict[str, int]:
        """Refusals so far, every use listed (at 0 until one is refused)."""
        return dict(self._counts)


@dataclass(frozen=True)
class TargetGuard:
    """Checks targets before runners reach them.

    ``allow_private`` comes from ``RUNLEDGER_ALLOW_PRIVATE_TARGETS`` at the composition
    root; when true every check passes without resolving anything. ``clock`` times the
    per-tab resolution cache of :meth:`page_checks`. ``refusals`` counts what it refuses:
    pass the runner's own to see it on ``/metrics``.
    """

    allow_private: bool = False
    resolver: Resolver = field(default=resolve_system, compare=False)
    opener: Opener = field(default=asyncio.open_connection, compare=False)
    clock: Clock = field(default=time.monotonic, compare=False)
    refusals: RefusalCount = field(default_factory=RefusalCount, compare=False)

    def _refused(self, use: TargetUse, target: str, address: str, reason: str) -> TargetRefused:
        """The error to raise, counted: each refusal goes through here once."""
        self.refusals.add(use)
        return TargetRefused(target, address, reason)

    async def check_host(
        self, host: str, port: int, *, target: str | None = None, use: TargetUse = "page"
    ) -> tuple[str, ...]:
        """Refuse ``host`` unless every address it resolves to is public; return those
        addresses, which the caller should connect to (a second lookup could answer
        differently: DNS rebinding). Empty when private targets are allowed (nothing
        is resolved then).

        Raises ``TargetRefused`` naming the first refused address (counted under
        ``use``), or ``TargetInvalid`` when the host is empty or does not resolve."""
        if self.allow_private:
            return ()
        shown = target or host
        name = normalized_host(host)
        if not name:
            raise TargetInvalid(f"target {shown!r} has no host")
        if name in _LOCAL_NAMES or name.endswith(".localhost"):
            raise self._refused(use, shown, name, "a loopback name")
        literal = _literal_address(name)
        addresses = [str(literal)] if literal is not None else await self.resolver(name, port)
        if not addresses:
            raise TargetInvalid(f"host {name!r} resolves to no address")
        checked = []
        for text in addresses:
            address = _literal_address(text)
            if address is None:
                raise TargetInvalid(f"host {name!r} resolved to a non-address {text!r}")
            reason = refusal_reason(address)
            if reason is not None:
                raise self._refused(use, shown, str(address), reason)
            checked.append(str(address))
        return tuple(checked)

    async def check_url(
        self, url: str, *, schemes: frozenset[str] = WEB_SCHEMES, use: TargetUse = "page"
    ) -> tuple[str, ...]:
        """Refuse ``url`` unless its scheme is in ``schemes`` and its host is public;
        the host's checked addresses as :meth:`check_host` returns them.
        ``TargetInvalid`` for a URL that does not parse (``http://[::1``)."""
        parts = _split(url)
        scheme = parts.scheme.lower()
        if scheme not in schemes:
            raise TargetInvalid(f"target {url!r}: scheme {scheme or '(none)'!r} is not allowed")
        try:
            port = parts.port or _DEFAULT_PORTS.get(scheme, 0)
        except ValueError as exc:
            raise TargetInvalid(f"target {url!r}: bad port") from exc
        if "\\" in parts.netloc:
            # A browser ends the host at a backslash, Python's parser does not: in
            # "http://127.0.0.1\@example.com/" this check would see example.com and
            # Chromium would go to 127.0.0.1.
            raise TargetInvalid(
                f"target {url!r}: a backslash before the path makes the host ambiguous"
            )
        return await self.check_host(parts.hostname or "", port, target=url, use=use)

    async def connect(
        self, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A TCP connection to ``host``, opened to an address :meth:`check_host` checked
        (the first that accepts within ``CONNECT_TIMEOUT_S``), never to a second lookup
        of the name. Raises what ``check_host`` raises, or OSError when no address
        answers. With private targets allowed the host is connected to as it is. Used by
        a tab's egress proxy: a refusal here counts as a ``subresource``."""
        addresses = await self.check_host(host, port, use="subresource") or (host,)
        error: Exception | None = None
        for address in addresses:
            try:
                return await asyncio.wait_for(self.opener(address, port), CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError) as exc:
                error = exc
        raise OSError(f"no address of {host} accepted a connection on port {port}: {error}")

    def page_checks(self) -> tuple[RequestFilter | None, Connect | None]:
        """What a browser tab needs to keep to public targets: the request filter (every
        request checked before Chromium sends it) and the :meth:`connect` its egress
        proxy opens connections with (see ``runners.egress_proxy``); both None when
        private targets are allowed. Call it once per tab: both checks share a new
        :class:`ResolutionCache`, so within its TTL a host is resolved once for the tab
        and the proxy connects to the addresses the filter approved."""
        if self.allow_private:
            return None, None
        tab_guard = dataclasses.replace(
            self, resolver=ResolutionCache(self.resolver, clock=self.clock)
        )
        return tab_guard.request_refusal, tab_guard.connect

    async def request_refusal(self, url: str) -> TargetRefused | TargetInvalid | None:
        """For the browser's request filter: None if a page may request ``url``, else
        the error. Non-network schemes (data:, blob:, about:) are the page's own."""
        if self.allow_private:
            return None
        try:
            if _split(url).scheme.lower() in ("data", "blob", "about"):
                return None
            await self.check_url(url, schemes=frozenset(_DEFAULT_PORTS), use="subresource")
        except (TargetRefused, TargetInvalid) as exc:
            return exc
        return None
