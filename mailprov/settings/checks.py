"""The rules a setting's value must follow, one function per kind of value.

Each check takes the value as given (and the folder relative paths resolve
against) and returns the value to keep, often normalised (host names as lower-case
A-labels, networks in their canonical form), or raises :class:`Invalid` saying
what is wrong and what to write instead. The loader adds which setting it was
and where it came from. Pure: no I/O, nothing about the host.
"""

from __future__ import annotations

import ipaddress
import math
import re
import shlex
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from mailprov.errors import MailprovError
from mailprov.rules.addresses import normalise_domain
from mailprov.rules.backends import backend_name, parse_backend
from mailprov.rules.dnscheck import parse_nameserver
from mailprov.rules.sizes import parse_size

#: No string setting is longer than this (PATH_MAX): a longer one is a mistake or an attack.
MAX_LENGTH = 4096

_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_LABEL_RE = re.compile(_LABEL)
# Absolute paths of letters, digits and . _ - + @ / only: nothing a config parser splits on.
SAFE_PATH_RE = re.compile(r"/[A-Za-z0-9._+@/-]*")
PLAIN_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}")
USER_RE = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
DOVECOT_SIZE_RE = re.compile(r"[0-9]+[KMG]?")
RELAYHOST_RE = re.compile(r"(?:\[[A-Za-z0-9.:-]+\]|[A-Za-z0-9.-]+)(?::[0-9]{1,5})?")
# Printable ASCII without space, quotes, backslash and '#': safe in both Postfix map
# files and Dovecot's connect string.
SECRET_RE = re.compile(r"[!$-&(-\[\]-~]+")
_SMTP_USER_RE = re.compile(r"[A-Za-z0-9._@+=-]{1,255}")
_TOKEN_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9+._/-]{0,127}")
_CLAIM_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_OID_RE = re.compile(r"[0-2](?:\.(?:0|[1-9][0-9]{0,9})){1,30}")
# Control (Cc), format (Cf), line/paragraph separators (Zl, Zp) and surrogates (Cs):
# newlines and NULs split config lines; the rest hide what a value really holds.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


class Invalid(ValueError):
    """A value broke a rule: ``why`` says which, ``hint`` what to write instead."""

    def __init__(self, why: str, hint: str | None = None) -> None:
        super().__init__(why)
        self.why = why
        self.hint = hint


#: A check: (value, folder for relative paths) -> the value to keep.
CheckFn = Callable[[str, Path], str]


@dataclass(frozen=True)
class Rule:
    """Marks a ``str`` setting (``Annotated[str, Rule(check)]``) with the check it must pass."""

    check: CheckFn
    #: Also accept "" (meaning "not set" or "use the default").
    optional: bool = False


@dataclass(frozen=True)
class Range:
    """Marks an ``int``/``float`` setting with its inclusive bounds (None: unbounded)."""

    low: float | None = None
    high: float | None = None


def plain_text(value: str) -> str:
    """Every string setting: no control characters, no line breaks, not absurdly long."""
    if len(value) > MAX_LENGTH:
        raise Invalid(
            f"longer than {MAX_LENGTH} characters", hint="no setting needs that much text"
        )
    bad = next((c for c in value if unicodedata.category(c) in _FORBIDDEN_CATEGORIES), None)
    if bad is not None:
        raise Invalid(
            f"holds the control character U+{ord(bad):04X} (a line break, NUL, tab or the like)",
            hint="remove it: no setting may hold control characters",
        )
    return value


def check_range(value: float, bounds: Range) -> None:
    """Numbers: finite and within the bounds."""
    if isinstance(value, float) and not math.isfinite(value):
        raise Invalid("not a finite number")
    low, high = bounds.low, bounds.high
    if (low is not None and value < low) or (high is not None and value > high):
        if high is None:
            raise Invalid(f"must be at least {low:g}")
        if low is None:
            raise Invalid(f"must be at most {high:g}")
        raise Invalid(f"must be {low:g}-{high:g}")


def _from_rules(error: MailprovError) -> Invalid:
    return Invalid(error.message, error.hint)


def fqdn(value: str, _base: Path) -> str:
    """A fully qualified host or domain name (IDNA allowed) -> lower-case A-label."""
    if any(c.isspace() for c in value):
        raise Invalid("a host name holds no spaces", hint="e.g. mail.example.org")
    try:
        return normalise_domain(value)
    except MailprovError as exc:
        raise Invalid(
            "not a fully qualified host name",
            hint="use letters, digits and hyphens in dot-separated labels, e.g. mail.example.org",
        ) from exc


def host(value: str, base: Path) -> str:
    """An IP address or a host name (one label such as ``localhost`` is fine)."""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    if "." not in value.rstrip(".") and _LABEL_RE.fullmatch(value.lower()):
        return value.lower()
    try:
        return fqdn(value, base)
    except Invalid:
        raise Invalid(
            "not an IP address or host name", hint="e.g. 127.0.0.1 or smtp.example.org"
        ) from None


def ip(value: str, _base: Path) -> str:
    """An IPv4 or IPv6 address, in canonical form."""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise Invalid("not an IP address", hint="e.g. 127.0.0.1 or ::1") from None


def ipv4(value: str, _base: Path) -> str:
    """An IPv4 address."""
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        raise Invalid("not an IPv4 address", hint="e.g. 192.0.2.10") from None


def ipv6(value: str, _base: Path) -> str:
    """An IPv6 address, in canonical form."""
    try:
        return str(ipaddress.IPv6Address(value))
    except ValueError:
        raise Invalid("not an IPv6 address", hint="e.g. 2001:db8::10") from None


def network(value: str, _base: Path) -> str:
    """A network such as ``127.0.0.0/8`` or ``[::1]/128`` (Postfix's form), or one address."""
    try:
        ipaddress.ip_network(value.strip("[]").replace("]/", "/"), strict=False)
    except ValueError:
        raise Invalid("not a network", hint="e.g. 127.0.0.0/8 or [::1]/128") from None
    return value


def trusted_host(value: str, base: Path) -> str:
    """An OpenDKIM TrustedHosts entry: an address, a network (not /0) or a host name."""
    if "/" in value or ":" in value or value.replace(".", "").isdigit():
        net = network(value, base)
        if ipaddress.ip_network(net.strip("[]").replace("]/", "/"), strict=False).prefixlen == 0:
            raise Invalid(
                "trusts every host: OpenDKIM would sign mail from anywhere",
                hint="list only your own hosts or networks",
            )
        return net
    return fqdn(value, base)


def listen_address(value: str, base: Path) -> str:
    """``all`` or one IP address the mail services listen on."""
    if value == "all":
        return value
    try:
        return ip(value, base)
    except Invalid:
        raise Invalid("not an IP address or 'all'", hint='e.g. ["127.0.0.1", "::1"]') from None


def parse_endpoint(value: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` -> (host, port). Port 0 means any free port."""
    rest, sep, port = value.rpartition(":")
    name = rest[1:-1] if rest.startswith("[") and rest.endswith("]") else rest
    if not sep or not name or not port.isascii() or not port.isdigit() or int(port) > 65535:
        raise Invalid("not HOST:PORT", hint="e.g. 127.0.0.1:2525 or [::1]:2525")
    try:
        return host(name, Path()), int(port)
    except Invalid:
        raise Invalid(
            f"'{name[:64]}' is not an IP address or host name", hint="e.g. 127.0.0.1:2525"
        ) from None


def endpoint(value: str, _base: Path) -> str:
    """A listening address ``HOST:PORT`` (checked; kept as given)."""
    parse_endpoint(value)
    return value


def parse_db_host(value: str, default_port: int = 5432) -> tuple[str, int]:
    """``HOST``, ``HOST:PORT`` or ``[V6]:PORT`` of a PostgreSQL server -> (host, port)."""
    if value.startswith("[") and value.endswith("]"):
        value = value[1:-1]
    try:
        return host(value, Path()), default_port
    except Invalid:
        pass
    try:
        return parse_endpoint(value)
    except Invalid:
        raise Invalid(
            "not a database server as HOST or HOST:PORT", hint="e.g. 127.0.0.1:5433 or db2:5432"
        ) from None


def db_host(value: str, _base: Path) -> str:
    """A PostgreSQL server the mail servers read from: ``HOST[:PORT]`` (checked; kept as given)."""
    parse_db_host(value)
    return value


def backend(value: str, base: Path) -> str:
    """A backend of the site as ``NAME=HOST`` (the host an IP address or a host name)."""
    try:
        name, where = parse_backend(value)
    except MailprovError as exc:
        raise _from_rules(exc) from None
    return f"{name}={host(where, base)}"


def backend_ref(value: str, _base: Path) -> str:
    """The name of one of the site's backends (checked against the list once all is in)."""
    try:
        return backend_name(value)
    except MailprovError as exc:
        raise _from_rules(exc) from None


def nameserver(value: str, _base: Path) -> str:
    """A name server as ``IP[:PORT]``."""
    try:
        return str(parse_nameserver(value))
    except MailprovError as exc:
        raise _from_rules(exc) from None


def server_path(value: str, base: Path) -> str:
    """A path written into a server's config or a unit: the resolved path uses the safe charset.

    Relative paths resolve against the config file's folder; the value is kept as given.
    """
    if not value:
        raise Invalid("empty", hint="give a path")
    path = Path(value).expanduser()
    resolved = str(path if path.is_absolute() else base / path)
    if not SAFE_PATH_RE.fullmatch(resolved):
        raise Invalid(
            f"the path {resolved[:80]!r} holds characters other than letters, digits "
            "and . _ - + @ /",
            hint="move the file or folder to a path without spaces, quotes or other special "
            "characters",
        )
    return value


def local_path(value: str, _base: Path) -> str:
    """A path only mailprov itself opens (never written into another program's config)."""
    if not value:
        raise Invalid("empty", hint="give a path")
    return value


def dovecot_base_dir(value: str, base: Path) -> str:
    """Dovecot's base_dir: a safe path short enough for the unix sockets in it."""
    server_path(value, base)
    if len(value) > 80:
        raise Invalid(
            "too long: unix socket paths in it must stay under 108 bytes",
            hint="use a shorter folder such as /run/dovecot",
        )
    return value


def user_name(value: str, _base: Path) -> str:
    """A system user name (what useradd accepts by default)."""
    if not USER_RE.fullmatch(value):
        raise Invalid(
            "not a user name",
            hint="lower-case letters, digits, '_' and '-', starting with a letter or '_'",
        )
    return value


def plain_name(value: str, _base: Path) -> str:
    """A plain name: letters, digits, '_', '.', '-'."""
    if not PLAIN_NAME_RE.fullmatch(value):
        raise Invalid("not a plain name", hint="letters, digits, '_', '.' and '-', e.g. dovecot")
    return value


def size(value: str, _base: Path) -> str:
    """A size such as ``25M`` or ``1G``."""
    try:
        parse_size(value)
    except MailprovError as exc:
        raise _from_rules(exc) from None
    return value


def dovecot_size(value: str, _base: Path) -> str:
    """A size in Dovecot's syntax: digits and an optional K, M or G."""
    if not DOVECOT_SIZE_RE.fullmatch(value):
        raise Invalid("not a size such as 1G", hint="digits and an optional K, M or G")
    return value


def relayhost(value: str, _base: Path) -> str:
    """Postfix's relayhost: ``[host]:port``, ``host:port`` or ``host``."""
    if not RELAYHOST_RE.fullmatch(value) or int(value.rpartition("]")[2][1:] or "0") > 65535:
        raise Invalid("not a relay host", hint="e.g. [smtp.example.org]:587")
    return value


def smtp_user(value: str, _base: Path) -> str:
    """An SMTP AUTH user name: letters, digits and . _ @ + = -."""
    if not _SMTP_USER_RE.fullmatch(value):
        raise Invalid("not a user name", hint="letters, digits and . _ @ + = -")
    return value


def command(value: str, _base: Path) -> str:
    """A command line split as a shell would (no shell runs it)."""
    try:
        words = shlex.split(value)
    except ValueError as exc:
        raise Invalid(f"cannot be split into words ({exc})", hint="balance the quotes") from None
    if not words:
        raise Invalid("names no program", hint="e.g. /usr/local/bin/sms-gateway --to-stdin")
    return value


def token(value: str, _base: Path) -> str:
    """A token such as a JWT ``typ``: letters, digits and + . _ / -."""
    if not _TOKEN_RE.fullmatch(value):
        raise Invalid("not a plain token", hint="letters, digits and + . _ / -")
    return value


def claim_name(value: str, _base: Path) -> str:
    """A JWT claim name."""
    if not _CLAIM_RE.fullmatch(value):
        raise Invalid("not a claim name", hint="letters, digits and '_', e.g. family_name")
    return value


def oid(value: str, _base: Path) -> str:
    """A dotted object identifier such as ``1.3.6.1.5.5.7.3.2``."""
    if not _OID_RE.fullmatch(value):
        raise Invalid("not a dotted OID", hint="e.g. 1.3.6.1.5.5.7.3.4")
    return value


def text(value: str, _base: Path) -> str:
    """Free text that only mailprov reads (the generic rules apply, nothing more)."""
    return value


def _loopback(name: str) -> bool:
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def web_url(value: str, _base: Path) -> str:
    """An https URL (http only to a loopback host), with no user, query or fragment.

    Kept exactly as written: an OpenID Connect issuer is compared as a string.
    """
    try:
        parts = urlsplit(value)
        name = parts.hostname or ""
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        raise Invalid("not a URL", hint="e.g. https://id.example.org") from None
    if not name or not port_ok or any(c.isspace() for c in value):
        raise Invalid("not a URL with a host", hint="e.g. https://id.example.org")
    if parts.scheme != "https" and not (parts.scheme == "http" and _loopback(name)):
        raise Invalid(
            "must be an https URL (plain http only to 127.0.0.1, ::1 or localhost)",
            hint="e.g. https://id.example.org",
        )
    if parts.username is not None or parts.query or parts.fragment or "#" in value:
        raise Invalid(
            "must not carry a user, a query or a fragment", hint="e.g. https://id.example.org"
        )
    return value


def return_url(value: str, base: Path) -> str:
    """Where a browser is sent back to: a path on this server (``/…``) or a :func:`web_url`;
    ``{number}`` (a request number) may appear once, no other braces."""
    bare = value.replace("{number}", "", 1)
    if "{" in bare or "}" in bare:
        raise Invalid(
            "may hold '{number}' once and no other braces", hint="e.g. /requests/{number}"
        )
    if value.startswith("/") and not value.startswith("//"):
        if any(c.isspace() or c in "\\#" for c in value):
            raise Invalid("not a plain path", hint="e.g. /requests/{number}")
        return value
    web_url(bare, base)
    return value


def store_url(value: str, base: Path) -> str:
    """The account store: ``sqlite:///PATH`` or ``postgresql+psycopg://USER@HOST:PORT/DB``.

    Every part the mail servers' SQL maps and Dovecot's connect string carry is
    checked (the password too, without ever showing it). URL options are fine for
    mailprov's own connections; ``deploy`` refuses them (the servers cannot apply them).
    """
    try:
        # Lazy: SQLAlchemy is heavy, and every command module loads settings at import.
        from sqlalchemy.engine import make_url  # noqa: PLC0415  (lazy: heavy)

        parsed = make_url(value)
    except Exception:
        raise Invalid(
            "not a database URL", hint="use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            server_path(database, base)
        return value
    if backend != "postgresql":
        raise Invalid(
            f"the mail servers cannot read a {backend} store",
            hint="use sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DB",
        )
    if not parsed.host or not parsed.database or not parsed.username:
        raise Invalid(
            "a PostgreSQL URL must name the host, the user and the database",
            hint="e.g. postgresql+psycopg://mailprov@db.example.org:5432/mailprov",
        )
    try:
        host(parsed.host, base)
        plain_name(parsed.username, base)
        plain_name(parsed.database, base)
    except Invalid as exc:
        raise Invalid(
            f"the host, user or database name is unusable ({exc.why})",
            hint="use plain names: letters, digits, '_', '.' and '-'",
        ) from None
    if parsed.password and not SECRET_RE.fullmatch(str(parsed.password)):
        raise Invalid(
            "the database password holds a space, quote, backslash, '#' or a non-ASCII "
            "character, which the mail servers' config files cannot carry safely",
            hint="choose a database password of printable ASCII without those characters",
        )
    return value


# Path characters safe in a Dovecot SQL literal, an nginx config and a mail client's
# message: no quotes, '%' (Dovecot's variables), '\', spaces, '?' or '#'.
_URL_PATH_RE = re.compile(r"/[A-Za-z0-9._~/-]*")


def public_url(value: str, base: Path) -> str:
    """The address people use for the owner's portal: ``https://HOST[:PORT][/PATH]``.

    ``http://`` only for a loopback host (a test site); no user, query or fragment.
    Returns it normalised (host in lower case, a path of at least ``/``).
    """
    hint = "e.g. https://mail.example.org/ (letters, digits, '.', '_', '~', '-', '/' in the path)"
    web_url(value, base)  # the rules every URL of the site config keeps (scheme, no user, ...)
    scheme, _, rest = value.partition("://")
    authority, slash, path = rest.partition("/")
    if slash and not _URL_PATH_RE.fullmatch(slash + path):
        raise Invalid("the path holds characters a config file cannot carry", hint=hint)
    if authority.startswith("["):
        name, _, after = authority[1:].partition("]")
        port = after.removeprefix(":") if after.startswith(":") else after or ""
        ok = not after or after.startswith(":")
    else:
        name, _, port = authority.partition(":")
        ok = True
    if not ok or (port and not (port.isascii() and port.isdigit() and 0 < int(port) < 65536)):
        raise Invalid("the port is not a number from 1 to 65535", hint=hint)
    try:
        name = host(name, base)
    except Invalid:
        raise Invalid("the host is not a host name or IP address", hint=hint) from None
    shown = f"[{name}]" if ":" in name else name
    return f"{scheme}://{shown}{f':{int(port)}' if port else ''}{slash + path or '/'}"


def _is_loopback(name: str) -> bool:
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
