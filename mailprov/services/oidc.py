"""Identity by redirect: a requester proves who they are by signing in at the site's
OpenID Connect provider, as real portals do.

:func:`start` begins a sign-in for an open request: a random ``state`` (single use,
``[oidc] state_ttl_seconds``), bound to the request and to the browser — the store
keeps the HMACs of the state and of the browser's binding cookie, nothing else; the
``nonce`` and the PKCE verifier are derived from the state (:mod:`mailprov.identity.oidc`).
It answers the provider's authorization URL (code flow, PKCE S256, the ``claims``
request for verified claims). A newer start supersedes the request's live ones.

:func:`finish` takes the callback: the state must be live, unexpired and this
browser's; it is consumed first (so a replay is refused even if what follows fails).
An ``error`` from the provider ends there; otherwise the code is exchanged (with the
verifier), and the ID token goes to :func:`mailprov.services.provisioning.verify_with_token`
with the provider's keys, ``client_id`` as audience, ``[oidc]``'s framework and
level and the sign-in's nonce: the gate's own checks (A) 1-19, its IDG codes, and,
on success, the same move to identity-verified and the same code to the recovery
contact as a token given to ``request verify``. A failure changes nothing on the
request; it is audited (``request.verify-failed``) with its code, never a secret.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

from sqlalchemy import delete, insert, select, update

from mailprov.errors import (
    MailprovError,
    OidcProviderRefused,
    OidcStateExpired,
    OidcStateInvalid,
    OidcStateUsed,
    OidcUnavailable,
    RequestExpired,
    TrustInvalid,
    WrongRequestState,
)
from mailprov.identity import oidc as protocol
from mailprov.identity.tokens import TokenPolicy, TrustedIssuer, TrustedKeys
from mailprov.model import RequestState, Secret
from mailprov.rules.assurance import DEFAULT_MIN_LEVEL
from mailprov.services import provisioning
from mailprov.services.provisioning import TokenSource
from mailprov.store import audit
from mailprov.store.schema import oidc_flows
from mailprov.system import oidc as provider_http
from mailprov.system.secrets import SecretKind, read_secret_text

if TYPE_CHECKING:
    from mailprov.services.accounts import Actor
    from mailprov.services.provisioning import Request, Sender
    from mailprov.settings import SiteConfig
    from mailprov.settings.sections import OidcSection
    from mailprov.store import Store

#: Finished and stale sign-ins are kept this long (a late callback is "expired", not
#: "unknown"), then purged by the next start.
KEEP_SECONDS = 86_400
#: An authorization code longer than this is not one (providers' are well under 1 KiB).
MAX_CODE = 2048
_SECRET = SecretKind(
    "OpenID Connect client secret file (oidc.client_secret_file)",
    hint="put the client secret alone in the file, mode 0600",
)


@dataclass(frozen=True)
class Started:
    """A started sign-in: where to send the browser, and the cookie that binds it."""

    request_id: str
    authorization_url: str
    #: The browser binding: set as a cookie, never shown, never in a URL.
    binding: Secret
    expires_at: int


def section(settings: SiteConfig) -> OidcSection:
    """``[oidc]``, if identity by redirect is configured.

    Raises:
        OidcUnavailable: ``[oidc] issuer`` is not set.
    """
    if not settings.oidc.issuer:
        raise OidcUnavailable(
            "identity by redirect is not set up on this server",
            hint="prove who you are with an identity token or a certificate; "
            "administrators: see [oidc] in the README",
        )
    return settings.oidc


def connection(settings: SiteConfig) -> provider_http.Connection:
    """How to reach ``[oidc] issuer`` (its CA file and timeout)."""
    o = settings.oidc
    ca = settings.resolve_path(o.ca_file) if o.ca_file else None
    return provider_http.Connection(o.issuer, ca, o.timeout_seconds)


def _open_request(
    store: Store, settings: SiteConfig, request_id: str, *, send: Sender, actor: Actor
) -> Request:
    """The request, if it can still be proven (open, in time); a late one is expired."""
    warnings = provisioning.expire_if_late(store, settings, request_id, send=send, actor=actor)
    request = provisioning.get_request(store, request_id)
    if request.state == RequestState.EXPIRED:
        raise RequestExpired(request_id=request_id, warnings=warnings)
    if request.state != RequestState.OPEN:
        raise WrongRequestState(
            f"the request is {request.state}; identity is proven while it is open",
            request_id=request_id,
        )
    return request


def sign_in_url(settings: SiteConfig, pepper: bytes, state: str, nonce: str) -> str:
    """The provider's authorization URL for a sign-in with ``state`` and ``nonce``: code
    flow, PKCE S256 (the verifier derived from the state), the verified claims asked for.

    Raises:
        OidcUnavailable: the provider's discovery fails.
    """
    o = settings.oidc
    return provider_http.authorization_url(
        provider_http.discover(connection(settings)),
        client_id=o.client_id,
        redirect_uri=o.redirect_url,
        scope=" ".join(o.scopes),
        state=state,
        nonce=nonce,
        code_verifier=protocol.derive(pepper, "pkce", state),
        claims=protocol.claims_request(o.trust_framework, settings.identity.required_claims),
    )


def start(
    store: Store,
    settings: SiteConfig,
    pepper: bytes,
    request_id: str,
    *,
    binding: Secret | None,
    send: Sender,
    actor: Actor,
) -> Started:
    """Begin a sign-in at the provider for an open request.

    ``binding`` is the browser's binding cookie if it has one (one browser, one binding,
    so two requests in two tabs both work); otherwise a new one is made.

    Raises:
        OidcUnavailable: not configured, or the provider's discovery fails.
        RequestExpired, WrongRequestState: the request cannot be proven any more.
    """
    o = section(settings)
    _open_request(store, settings, request_id, send=send, actor=actor)
    given = binding.reveal() if binding is not None else ""
    if not (40 <= len(given) <= protocol.VALUE_MAX and given.isascii()):
        given = secrets.token_urlsafe(protocol.SECRET_BYTES)
    state = secrets.token_urlsafe(protocol.SECRET_BYTES)
    expires_at = actor.now + o.state_ttl_seconds
    url = sign_in_url(settings, pepper, state, protocol.derive(pepper, "nonce", state))
    with store.begin() as conn:
        conn.execute(delete(oidc_flows).where(oidc_flows.c.expires_at < actor.now - KEEP_SECONDS))
        conn.execute(
            update(oidc_flows)
            .where(oidc_flows.c.request_id == request_id, oidc_flows.c.outcome.is_(None))
            .values(outcome="superseded")
        )
        conn.execute(
            insert(oidc_flows).values(
                state_hash=protocol.mac(pepper, "state", state),
                request_id=request_id,
                browser_hash=protocol.mac(pepper, "browser", given),
                outcome=None,
                created_at=actor.now,
                expires_at=expires_at,
            )
        )
        audit.append(
            conn,
            at=actor.now,
            actor=actor.name,
            action="request.identity-redirect",
            target=request_id,
            details={"issuer": o.issuer},
        )
    return Started(request_id, url, Secret(given), expires_at)


def _claim(store: Store, pepper: bytes, state: str | None, binding: Secret | None, now: int) -> str:
    """Consume the sign-in ``state`` names if this browser started it; its request ID."""
    raw = state or ""
    shaped = 1 <= len(raw) <= protocol.VALUE_MAX and raw.isascii()
    expected = protocol.mac(pepper, "browser", binding.reveal() if binding else "")
    row = None
    if shaped:
        with store.read() as conn:
            row = conn.execute(
                select(oidc_flows).where(
                    oidc_flows.c.state_hash == protocol.mac(pepper, "state", raw)
                )
            ).first()
    same = hmac.compare_digest(row.browser_hash if row else "0" * 64, expected)
    if row is None or not same or binding is None:
        raise OidcStateInvalid
    if row.outcome is not None:
        raise OidcStateUsed(request_id=row.request_id)
    if now > row.expires_at:
        raise OidcStateExpired(request_id=row.request_id)
    with store.begin() as conn:
        done = conn.execute(
            update(oidc_flows)
            .where(oidc_flows.c.state_hash == row.state_hash, oidc_flows.c.outcome.is_(None))
            .values(outcome="used")
        )
    if done.rowcount != 1:  # another callback with the same state got there first
        raise OidcStateUsed(request_id=row.request_id)
    return str(row.request_id)


def token_source(settings: SiteConfig, nonce: str, via: str = "oidc") -> TokenSource:
    """The provider's keys and the policy the gate checks its ID token with (and ``nonce``)."""
    o = settings.oidc
    conn = connection(settings)
    provider = provider_http.discover(conn)
    level = o.min_assurance_level or DEFAULT_MIN_LEVEL.get(o.trust_framework, "")
    frameworks: dict[str, str] = (
        {o.trust_framework: level} if o.trust_framework else dict(DEFAULT_MIN_LEVEL)
    )
    issuer = TrustedIssuer(o.issuer, o.client_id, frameworks)
    default_alg = o.key_algorithm

    def keys(*, refresh: bool = False) -> TrustedKeys:
        jwks = provider_http.fetch_jwks(conn, provider, refresh=refresh)
        try:
            return protocol.provider_keys(jwks, issuer, default_alg)
        except TrustInvalid as exc:
            raise OidcUnavailable(
                f"the identity provider's keys are unusable: {exc.message}"
            ) from None

    ident = settings.identity
    policy = TokenPolicy(
        o.token_type, ident.max_verification_age_days, tuple(ident.required_claims)
    )
    return TokenSource(
        keys=keys(),
        policy=policy,
        nonce=nonce,
        via=via,
        refresh=lambda: keys(refresh=True),
    )


def _failed(store: Store, request_id: str, exc: MailprovError, actor: Actor) -> MailprovError:
    """Name the request in ``exc`` and audit it (the code only, never a secret)."""
    exc.request_id = exc.request_id or request_id
    details = {"error": exc.code, "via": "oidc"}
    if "provider_error" in exc.details:
        details["provider_error"] = exc.details["provider_error"]
    with store.begin() as conn:
        audit.append(
            conn,
            at=actor.now,
            actor=actor.name,
            action="request.verify-failed",
            target=request_id,
            details=details,
        )
    return exc


def client_secret(settings: SiteConfig) -> Secret | None:
    """``[oidc] client_secret_file``'s secret (None for a public client).

    Raises:
        ConfigInvalid: the file is missing or readable by others.
    """
    o = settings.oidc
    if not o.client_secret_file:
        return None
    return Secret(read_secret_text(settings.resolve_path(o.client_secret_file), _SECRET))


def id_token_for(
    settings: SiteConfig,
    secret: Secret | None,
    *,
    code: Secret | None,
    error: str | None,
    verifier: str,
) -> Secret:
    """The ID token the provider's callback stands for: its ``code`` exchanged (PKCE
    ``verifier``), or the provider's ``error`` refused.

    Raises:
        OidcProviderRefused: the provider sent an error, no usable code, or no ID token.
        OidcUnavailable: the provider cannot be used now.
    """
    o = settings.oidc
    if error is not None:
        shown = provider_http.provider_error(error)
        raise OidcProviderRefused(
            f"the identity provider did not sign you in ({shown})", provider_error=shown
        )
    if code is None or not 1 <= len(code.reveal()) <= MAX_CODE:
        raise OidcProviderRefused("the identity provider sent back no usable sign-in code")
    conn = connection(settings)
    answer = provider_http.exchange_code(
        conn,
        provider_http.discover(conn),
        client_id=o.client_id,
        client_secret=secret,
        redirect_uri=o.redirect_url,
        code=code.reveal(),
        code_verifier=verifier,
    )
    id_token = answer.get("id_token")
    if not isinstance(id_token, str) or not id_token:
        raise OidcProviderRefused(
            "the identity provider answered without an ID token",
            hint="administrators: [oidc] scopes must include 'openid'",
        )
    return Secret(id_token)


def finish(
    store: Store,
    settings: SiteConfig,
    pepper: bytes,
    *,
    state: str | None,
    code: Secret | None,
    error: str | None,
    binding: Secret | None,
    send: Sender,
    actor: Actor,
) -> Request:
    """The provider's callback: consume the sign-in, exchange the code, run the gate.

    Raises:
        ConfigInvalid: the client secret file is missing or readable by others.
        OidcStateInvalid: unknown state, or not this browser's (the same answer).
        OidcStateUsed, OidcStateExpired: a replayed, superseded or stale sign-in.
        OidcProviderRefused: the provider sent an error, or refused the code.
        OidcUnavailable: not configured, or the provider cannot be used now.
        IdentityGateError: the ID token failed a check of the gate (its IDG code).
    """
    section(settings)
    # Read first: a broken secret file (an administrator's fault) must not use up the sign-in.
    secret = client_secret(settings)
    request_id = _claim(store, pepper, state, binding, actor.now)
    assert state is not None  # noqa: S101  (_claim refuses a missing state)
    _open_request(store, settings, request_id, send=send, actor=actor)
    try:
        id_token = id_token_for(
            settings,
            secret,
            code=code,
            error=error,
            verifier=protocol.derive(pepper, "pkce", state),
        )
        source = token_source(settings, protocol.derive(pepper, "nonce", state))
    except (OidcProviderRefused, OidcUnavailable) as exc:
        raise _failed(store, request_id, exc, actor) from None
    return provisioning.verify_with_token(
        store,
        settings,
        request_id,
        id_token,
        pepper=pepper,
        send=send,
        actor=actor,
        source=source,
    )


def return_location(
    settings: SiteConfig, request_id: str, *, error: str | None, idg: object = None
) -> str:
    """Where the browser goes after the callback: ``[oidc] return_url`` for the request,
    with ``identity=verified``, or ``error=CODE`` (and ``idg=IDG-…``), added to its query."""
    base = settings.oidc.return_url.replace("{number}", quote(request_id, safe="-"))
    mark = "identity=verified"
    if error:
        mark = f"error={quote(error)}" + (f"&idg={quote(idg)}" if isinstance(idg, str) else "")
    return f"{base}{'&' if '?' in base else '?'}{mark}"
