"""The HTTP API's gate: Host and Origin allow-lists, JSON-only writes, an optional bearer token.

Why each check exists (issue 10, item 9):

- **Host.** With DNS rebinding a web page's own name resolves to 127.0.0.1, so
  the browser sends the page's requests, with the page's ``Host``, to the API
  and lets the page read the answers (captured mail, identity codes in it).
  Only names that really are this API are answered: its listen address,
  ``localhost``, ``127.0.0.1``, ``[::1]`` and ``[relay] api_hosts``, each with
  or without the port. Anything else (or no ``Host``) gets 421.
- **Origin.** A browser marks cross-site requests with ``Origin``; one whose
  origin is not an allowed ``http://HOST[:PORT]`` is refused (403).
- **Content-Type.** A cross-site ``<form>`` or ``fetch(..., {mode: "no-cors"})``
  may send ``text/plain`` without a CORS preflight; writes must say
  ``application/json`` (415 otherwise), which a browser only sends after a
  preflight the API never grants.
- **Token.** With ``[relay] api_token_file`` every request needs
  ``Authorization: Bearer TOKEN`` (compared in constant time; 401 with
  ``WWW-Authenticate: Bearer``). The token is never logged or echoed. The
  Mailpit-compatible API also takes it as the password of ``Basic`` (what
  Mailpit's clients send), and needs JSON only on POST: a browser sends
  DELETE and PUT cross-site only after a CORS preflight, which is never granted.
  So does the web inbox: a browser cannot add a bearer header to a page it
  navigates to, so the inbox answers 401 with ``WWW-Authenticate: Basic`` and
  the browser asks for a user name (any) and a password (the token).
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from mailprov.model import Secret

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
REALM = 'Bearer realm="mailprov relay"'
#: The challenge of the web inbox's pages: the browser asks for the token as a password.
INBOX_REALM = 'Basic realm="mailprov relay inbox (password: the API token)", charset="UTF-8"'


@dataclass(frozen=True)
class Refusal:
    """Why a request was refused: HTTP status, error code and message (never the token)."""

    status: int
    code: str
    message: str


def _host_form(host: str) -> str:
    """A host as it appears in a Host header (IPv6 literals in brackets), lower case."""
    host = host.lower()
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def allowed_hosts(listen_host: str, port: int, extra: Iterable[str] = ()) -> frozenset[str]:
    """Every Host header value the API answers: each name with and without ``:port``."""
    names = {_host_form(listen_host), *LOOPBACK_NAMES, *(_host_form(h) for h in extra)}
    return frozenset({*names, *(f"{name}:{port}" for name in names)})


@dataclass(frozen=True)
class ApiGate:
    """Decides, from the method and headers alone, whether a request may reach a handler."""

    hosts: frozenset[str]
    token: Secret | None = None

    def check(
        self,
        method: str,
        headers: Mapping[str, str],
        *,
        json_methods: frozenset[str] = WRITE_METHODS,
        basic: bool = False,
    ) -> Refusal | None:
        """None if the request may pass, else the first reason to refuse it.

        ``json_methods`` need ``Content-Type: application/json``. ``basic`` also
        accepts the token as the password of ``Authorization: Basic`` (any user),
        the form Mailpit's clients send.
        """
        host = headers.get("Host", "").strip().lower()
        if host not in self.hosts:
            return Refusal(
                421,
                "host-refused",
                "this API does not answer for that Host header",
            )
        origin = headers.get("Origin")
        if origin is not None and not self._origin_ok(origin):
            return Refusal(403, "origin-refused", "cross-site requests are refused")
        if self.token is not None and not self._token_ok(headers.get("Authorization", ""), basic):
            return Refusal(401, "unauthorized", "a valid 'Authorization: Bearer TOKEN' is needed")
        if method.upper() in json_methods:
            kind = headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
            if kind != "application/json":
                return Refusal(
                    415,
                    "unsupported-media-type",
                    f"{method.upper()} needs 'Content-Type: application/json'",
                )
        return None

    def _origin_ok(self, origin: str) -> bool:
        try:
            parts = urlsplit(origin.strip())
        except ValueError:
            return False
        return (
            parts.scheme == "http"
            and not parts.path
            and parts.netloc.lower() in self.hosts
            and "@" not in parts.netloc
        )

    def _token_ok(self, header: str, basic: bool = False) -> bool:
        assert self.token is not None  # noqa: S101 (narrows a type)
        scheme, _, given = header.strip().partition(" ")
        if basic and scheme.lower() == "basic":
            try:
                given = base64.b64decode(given.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return False
            given = given.partition(":")[2]
        elif scheme.lower() != "bearer":
            return False
        expected = self.token.reveal().encode()
        return hmac.compare_digest(given.strip().encode("utf-8", "replace"), expected)
