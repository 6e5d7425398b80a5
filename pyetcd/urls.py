"""URLs, in one place: which ones etcd accepts (flags, MemberAdd), which ones our transport can dial, and the
gRPC target a URL names.

MemberAdd's peer URLs are judged as etcd's types.NewURLs judges them, on top of Go's url.Parse: a URL is
trimmed of Go's white space, parsed as Go's net/url parses it, and must then have an http, https, unix or
unixs scheme, a host that net.SplitHostPort splits into host and port, and no path. Python's urllib accepts
and rejects different strings (control characters, '%' escapes in the host, user info, bracketed hosts), so
the parts of Go's parser that decide acceptance are reproduced here; the parsed values themselves are not
needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

PEER_SCHEMES = frozenset({"http", "https", "unix", "unixs"})

GO_SPACE = frozenset("\t\n\v\f\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000"
                     + "".join(chr(c) for c in range(0x2000, 0x200B)))
"""What Go's unicode.IsSpace calls white space (strings.TrimSpace trims it)."""

HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
HOST_PUNCTUATION = frozenset("!$&'()*+,;=:[]<>\"-._~")
"""ASCII a host may hold unescaped besides letters and digits (Go's shouldEscape, host mode)."""
USERINFO_PUNCTUATION = frozenset("-._:~!$&'()*+,;=%@")


class InvalidURLError(ValueError):
    """Go's url.Parse or net.SplitHostPort refused the URL."""


def _is_alnum(char: str) -> bool:
    return char.isascii() and char.isalnum()


def trim_go_space(text: str) -> str:
    """strings.TrimSpace: NewURLs trims each URL before parsing it."""
    start, end = 0, len(text)
    while start < end and text[start] in GO_SPACE:
        start += 1
    while end > start and text[end - 1] in GO_SPACE:
        end -= 1
    return text[start:end]


def _split_scheme(raw: str) -> tuple[str, str]:
    """Go's getScheme: (scheme, rest); no scheme when a character before ':' cannot be in one."""
    for index, char in enumerate(raw):
        if char.isascii() and char.isalpha():
            continue
        if _is_alnum(char) or char in "+-.":
            if index == 0:
                return "", raw
            continue
        if char == ":":
            if index == 0:
                raise InvalidURLError("missing protocol scheme")
            return raw[:index], raw[index + 1:]
        return "", raw
    return "", raw


def _check_escapes(text: str, host: bool = False, zone: bool = False) -> str:
    """Go's unescape: every '%' starts two hex digits; in a host only non-ASCII (or %25) may be
    escaped and only host characters may appear. Returns the unescaped text."""
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "%":
            digits = text[index + 1:index + 3]
            if len(digits) < 2 or not set(digits) <= HEX_DIGITS:
                raise InvalidURLError(f"invalid URL escape {text[index:index + 3]!r}")
            value = int(digits, 16)
            if host and value < 0x80 and digits != "25":
                raise InvalidURLError(f"invalid URL escape {text[index:index + 3]!r}")
            if zone and digits != "25" and value != 0x20 \
                    and not (_is_alnum(chr(value)) or chr(value) in HOST_PUNCTUATION):
                raise InvalidURLError(f"invalid URL escape {text[index:index + 3]!r}")
            out.append(chr(value))
            index += 3
            continue
        if (host or zone) and char.isascii() and not (_is_alnum(char) or char in HOST_PUNCTUATION):
            raise InvalidURLError(f"invalid character {char!r} in host name")
        out.append(char)
        index += 1
    return "".join(out)


def _valid_optional_port(colon_port: str) -> bool:
    return colon_port == "" or (colon_port[0] == ":" and all("0" <= c <= "9" for c in colon_port[1:]))


def _parse_host(host: str) -> str:
    """Go's parseHost: the port after the host must be digits; returns the unescaped host."""
    if host.startswith("["):
        close = host.rfind("]")
        if close < 0:
            raise InvalidURLError("missing ']' in host")
        if not _valid_optional_port(host[close + 1:]):
            raise InvalidURLError(f"invalid port {host[close + 1:]!r} after host")
        zone = host.find("%25", 0, close)
        if zone >= 0:
            return (_check_escapes(host[:zone], host=True) + _check_escapes(host[zone:close], zone=True)
                    + _check_escapes(host[close:], host=True))
    elif (colon := host.rfind(":")) >= 0 and not _valid_optional_port(host[colon:]):
        raise InvalidURLError(f"invalid port {host[colon:]!r} after host")
    return _check_escapes(host, host=True)


def _parse_authority(authority: str) -> str:
    """Go's parseAuthority: optional user info before the last '@', then the host."""
    at = authority.rfind("@")
    host = _parse_host(authority[at + 1:])
    if at >= 0:
        userinfo = authority[:at]
        if not all(_is_alnum(c) or c in USERINFO_PUNCTUATION for c in userinfo):
            raise InvalidURLError("net/url: invalid userinfo")
        for part in userinfo.split(":", 1):
            _check_escapes(part)
    return host


def _split_host_port(hostport: str) -> None:
    """Go's net.SplitHostPort, for its verdict only."""
    colon = hostport.rfind(":")
    if colon < 0:
        raise InvalidURLError("missing port in address")
    start_bracket, end_bracket = 0, 0
    if hostport.startswith("["):
        close = hostport.find("]")
        if close < 0:
            raise InvalidURLError("missing ']' in address")
        if close + 1 != colon:
            raise InvalidURLError("missing port in address")
        start_bracket, end_bracket = 1, close + 1
    elif ":" in hostport[:colon]:
        raise InvalidURLError("too many colons in address")
    if "[" in hostport[start_bracket:]:
        raise InvalidURLError("unexpected '[' in address")
    if "]" in hostport[end_bracket:]:
        raise InvalidURLError("unexpected ']' in address")


def check_peer_url(raw: str) -> None:
    """Raise InvalidURLError unless etcd's types.NewURLs accepts `raw` as a peer URL."""
    text, hash_sign, fragment = trim_go_space(raw).partition("#")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):  # Go looks for them before the fragment only
        raise InvalidURLError("net/url: invalid control character in URL")
    scheme, rest = _split_scheme(text)
    if scheme.lower() not in PEER_SCHEMES:
        raise InvalidURLError("URL scheme must be http, https, unix, or unixs")
    if rest.endswith("?") and rest.count("?") == 1:
        rest = rest[:-1]
    else:
        rest = rest.partition("?")[0]
    if not rest.startswith("//"):
        raise InvalidURLError("URL address does not have the form host:port")  # opaque, or a path only
    authority, slash, path = rest[2:].partition("/")
    host = _parse_authority(authority)
    if slash:
        raise InvalidURLError("URL must not contain a path")
    if hash_sign and fragment:
        _check_escapes(fragment)
    _split_host_port(host)


def valid_peer_urls(urls: Sequence[str]) -> bool:
    """Whether etcd's types.NewURLs accepts these URLs: at least one, each a valid peer URL."""
    if not urls:
        return False
    try:
        for raw in urls:
            check_peer_url(raw)
    except InvalidURLError:
        return False
    return True


def url_problem(url: str) -> str | None:
    """Why etcd's types.NewURLs refuses `url` given in a flag, or None when it accepts it."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "unix", "unixs") or not parts.netloc:
        return f"URL scheme must be http, https, unix, or unixs: {url}"
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:  # unix sockets too: etcd names the socket file by the URL's host:port
        return f'URL address does not have the form "host:port": {url}'
    if parts.path:
        return f"URL must not contain a path: {url}"
    return None


def split_urls(value: str) -> tuple[str, ...]:
    """A flag's comma-separated URL list, blanks dropped."""
    return tuple(u.strip() for u in value.split(",") if u.strip())


def host_port(url: str) -> str:
    """`http://host:port` -> `host:port` for gRPC."""
    parts = urlsplit(url)
    return parts.netloc if parts.netloc else url


def dialable(urls: Sequence[str]) -> bool:
    """Whether the peer transport can name a target for each URL (http, https, unix, unixs).

    A member the transport cannot dial would stop every member's apply loop when its conf
    change is applied, so such URLs are refused up front.
    """
    from raft.transport import url_to_target  # grpc is not imported when only flags are parsed (--help)

    try:
        for url in urls:
            url_to_target(url)
    except ValueError:
        return False
    return bool(urls)
