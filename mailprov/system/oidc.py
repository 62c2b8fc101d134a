"""Talking to an OpenID Connect provider: discovery, its JWKS, the authorization URL, the code.

The protocol messages of the authorization code flow with PKCE (the authorization
URL with ``state``, ``nonce``, ``code_challenge`` S256 and the ``claims`` request; the
token request with the code, the verifier and the client's authentication) are
authlib's (``OAuth2Session``, over requests). What comes back is only *fetched* here:
the ID token is checked by the identity gate (:mod:`mailprov.identity.tokens`), never
by authlib. Discovery documents and JWKS are cached per issuer (an hour; the JWKS is
fetched again, at most once a minute, when a token names a key it does not hold).

Every answer is read with a size cap, redirects are not followed, and the
environment's proxies and ``.netrc`` are ignored (``trust_env = False``): the
provider is reached exactly at the URLs its configuration and discovery name.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mailprov.errors import OidcProviderRefused, OidcUnavailable

if TYPE_CHECKING:
    from pathlib import Path

    from mailprov.model import Secret

#: Discovery documents and key sets are small; anything larger is refused.
MAX_DOCUMENT = 512 * 1024
METADATA_TTL = 3600
#: A JWKS is fetched again for an unknown key at most this often (no refetch storms).
JWKS_REFRESH = 60
_ERROR_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz_")

_lock = threading.Lock()
_metadata: dict[str, tuple[float, Provider]] = {}
_keys: dict[str, tuple[float, Any]] = {}


@dataclass(frozen=True)
class Provider:
    """The endpoints of a provider, from its discovery document."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    #: ``id_token_signing_alg_values_supported``, as published.
    algorithms: tuple[str, ...] = ()


@dataclass(frozen=True)
class Connection:
    """How to reach the provider: its issuer, the CA file for https (None: the system's)."""

    issuer: str
    ca_file: Path | None = None
    timeout: float = 10.0

    @property
    def verify(self) -> str | bool:
        """requests' ``verify``: the CA file, or the system's CAs."""
        return str(self.ca_file) if self.ca_file is not None else True


def _session(conn: Connection, **client: Any) -> Any:
    """authlib's OAuth 2.0 client session (a requests Session), or a plain one."""
    import requests  # noqa: PLC0415  (lazy: heavy, only this path)
    from authlib.integrations.requests_client import OAuth2Session  # noqa: PLC0415  (lazy: heavy, only this path)

    session = OAuth2Session(**client) if client else requests.Session()
    session.trust_env = False
    session.verify = conn.verify
    return session


def _unavailable(what: str, why: object) -> OidcUnavailable:
    return OidcUnavailable(f"the identity provider's {what} could not be used: {why}"[:300])


def _get_json(conn: Connection, url: str, what: str) -> Any:
    import requests  # noqa: PLC0415  (lazy: heavy, only this path)

    try:
        with _session(conn) as session:
            answer = session.get(url, timeout=conn.timeout, allow_redirects=False, stream=True)
            body = answer.raw.read(MAX_DOCUMENT + 1, decode_content=True)
            status = answer.status_code
    except (requests.RequestException, OSError) as exc:
        raise _unavailable(what, type(exc).__name__) from None
    if status != 200:
        raise _unavailable(what, f"HTTP {status} from {url}")
    if len(body) > MAX_DOCUMENT:
        raise _unavailable(what, f"larger than {MAX_DOCUMENT} bytes")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise _unavailable(what, "not JSON") from None


def _url_of(data: dict[str, Any], name: str, issuer: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise _unavailable("discovery document", f"it has no {name}")
    secure = value.startswith("https://") or (
        issuer.startswith("http://") and value.startswith("http://")
    )
    if not secure:  # a loopback issuer (tests) may use http; anything else is https only
        raise _unavailable("discovery document", f"{name} is not https")
    return value


def discover(conn: Connection) -> Provider:
    """The provider's endpoints from ``{issuer}/.well-known/openid-configuration`` (cached).

    Raises:
        OidcUnavailable: unreachable, not JSON, or not this issuer's document (its
            ``issuer`` must equal the configured one exactly: OpenID Connect Discovery §4.3).
    """
    now = time.monotonic()
    with _lock:
        cached = _metadata.get(conn.issuer)
    if cached is not None and now - cached[0] < METADATA_TTL:
        return cached[1]
    url = conn.issuer.rstrip("/") + "/.well-known/openid-configuration"
    data = _get_json(conn, url, "discovery document")
    if not isinstance(data, dict):
        raise _unavailable("discovery document", "not a JSON object")
    if data.get("issuer") != conn.issuer:
        raise _unavailable("discovery document", "it names another issuer")
    algs = data.get("id_token_signing_alg_values_supported")
    provider = Provider(
        issuer=conn.issuer,
        authorization_endpoint=_url_of(data, "authorization_endpoint", conn.issuer),
        token_endpoint=_url_of(data, "token_endpoint", conn.issuer),
        jwks_uri=_url_of(data, "jwks_uri", conn.issuer),
        algorithms=tuple(a for a in algs if isinstance(a, str)) if isinstance(algs, list) else (),
    )
    with _lock:
        _metadata[conn.issuer] = (now, provider)
    return provider


def fetch_jwks(conn: Connection, provider: Provider, *, refresh: bool = False) -> Any:
    """The provider's JWKS document (cached; ``refresh`` fetches it again unless that was
    done in the last minute)."""
    now = time.monotonic()
    with _lock:
        cached = _keys.get(provider.jwks_uri)
    if cached is not None:
        age = now - cached[0]
        if age < (JWKS_REFRESH if refresh else METADATA_TTL):
            return cached[1]
    data = _get_json(conn, provider.jwks_uri, "key set (JWKS)")
    with _lock:
        _keys[provider.jwks_uri] = (now, data)
    return data


def authorization_url(
    provider: Provider,
    *,
    client_id: str,
    redirect_uri: str,
    scope: str,
    state: str,
    nonce: str,
    code_verifier: str,
    claims: dict[str, Any],
) -> str:
    """The URL that sends the browser to the provider: code flow, PKCE S256, state, nonce,
    and the ``claims`` request (OpenID Connect Core §5.5)."""
    from authlib.integrations.requests_client import OAuth2Session  # noqa: PLC0415  (lazy: heavy, only this path)

    with OAuth2Session(
        client_id, scope=scope, redirect_uri=redirect_uri, code_challenge_method="S256"
    ) as session:
        url, _ = session.create_authorization_url(
            provider.authorization_endpoint,
            state=state,
            code_verifier=code_verifier,
            nonce=nonce,
            claims=json.dumps(claims, separators=(",", ":")),
        )
    return str(url)


def provider_error(value: object) -> str:
    """An OAuth error code safe to show (RFC 6749 codes are lower-case letters and '_'),
    or ``unknown``: what a provider (or anyone, through the browser) sends is not echoed."""
    text = str(value or "")[:40]
    return text if text and set(text) <= _ERROR_CHARS else "unknown"


def exchange_code(
    conn: Connection,
    provider: Provider,
    *,
    client_id: str,
    client_secret: Secret | None,
    redirect_uri: str,
    code: str,
    code_verifier: str,
) -> dict[str, Any]:
    """The token endpoint's answer for ``code`` (client_secret_basic, or a public client).

    Raises:
        OidcProviderRefused: the provider answered an OAuth error (e.g. ``invalid_grant``).
        OidcUnavailable: it could not be reached, or answered something else than JSON.
    """
    import requests  # noqa: PLC0415  (lazy: heavy, only this path)
    from authlib.integrations.base_client import OAuthError  # noqa: PLC0415  (lazy: heavy, only this path)

    secret = client_secret.reveal() if client_secret is not None else None
    try:
        with _session(
            conn,
            client_id=client_id,
            client_secret=secret,
            token_endpoint_auth_method="client_secret_basic" if secret else "none",
        ) as session:
            token = session.fetch_token(
                provider.token_endpoint,
                grant_type="authorization_code",
                code=code,
                code_verifier=code_verifier,
                redirect_uri=redirect_uri,
                timeout=conn.timeout,
                allow_redirects=False,
            )
    except OAuthError as exc:
        error = provider_error(exc.error)
        raise OidcProviderRefused(
            f"the identity provider refused the sign-in code ({error})", provider_error=error
        ) from None
    except (requests.RequestException, OSError, ValueError) as exc:
        raise _unavailable("token endpoint", type(exc).__name__) from None
    return dict(token)


def forget() -> None:
    """Drop every cached discovery document and key set (tests; a changed [oidc])."""
    with _lock:
        _metadata.clear()
        _keys.clear()
