"""Password reset by identity, by redirect: the owner signs in at the site's OpenID Connect
provider instead of bringing a token (the portal's "Forgot password?" page offers it).

:func:`start` starts a reset by identity (:func:`mailprov.services.reset.start`: the same
answer and the same stored challenge whether the address is a mailbox here or not) and
answers the provider's authorization URL whose ``nonce`` is the reset's own nonce, with a
random ``state`` and PKCE (the verifier derived from the state). Nothing else is stored:
the browser keeps a binding cookie naming the address and the sign-in's expiry, sealed
with an HMAC (the site pepper) over them and the state, so only the browser that started
the sign-in, coming back with the provider's state, can finish it.

:func:`finish` takes the provider's callback: the binding must match the state and be
in time; the provider's code is exchanged, and its ID token goes to
:func:`mailprov.services.reset.verify_identity` with the provider's keys and ``[oidc]``'s
policy — the same checks, the same match with the account bound at provisioning, the same
code to the verified recovery contacts. A replay finds the reset's nonce spent
(``reset-ended``, or the token's ``jti`` seen: IDG-T14) or the provider refusing its
used code.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailprov.errors import (
    OidcProviderRefused,
    OidcStateExpired,
    OidcStateInvalid,
    OidcUnavailable,
)
from mailprov.identity import oidc as protocol
from mailprov.model import Secret
from mailprov.rules.addresses import parse_address
from mailprov.services import oidc, reset

if TYPE_CHECKING:
    from mailprov.settings import SiteConfig
    from mailprov.store import Store


@dataclass(frozen=True)
class RedirectStarted:
    """A started reset by redirect: the reset's answer, the provider's URL, the binding."""

    started: reset.ResetStarted
    authorization_url: str
    #: The browser binding: set as a cookie, never shown, never in a URL.
    binding: Secret
    expires_at: int


def _seal(pepper: bytes, state: str, address: str, expires_at: int) -> str:
    return protocol.mac(pepper, "reset-browser", f"{state}|{expires_at}|{address}")


def start(
    store: Store,
    settings: SiteConfig,
    pepper: bytes,
    raw_address: str,
    *,
    client: str,
    now: int,
) -> RedirectStarted:
    """Start a reset by identity of ``raw_address`` and a sign-in at the provider for it.

    Raises:
        OidcUnavailable: ``[oidc]`` is not set up, or the provider's discovery fails.
        ResetRouteDisabled, InvalidAddress, RateLimited: as :func:`mailprov.services.reset.start`.
    """
    oidc.section(settings)
    found = reset.start(
        store, settings, pepper, raw_address, via=reset.IDENTITY, client=client, now=now
    )
    assert found.nonce is not None  # noqa: S101  (a reset by identity always has one)
    state = secrets.token_urlsafe(protocol.SECRET_BYTES)
    url = oidc.sign_in_url(settings, pepper, state, found.nonce)
    expires_at = min(found.expires_at, now + settings.oidc.state_ttl_seconds)
    address = base64.urlsafe_b64encode(str(parse_address(raw_address)).encode()).decode()
    binding = f"{address}.{expires_at}.{_seal(pepper, state, address, expires_at)}"
    return RedirectStarted(found, url, Secret(binding), expires_at)


def binding_address(pepper: bytes, state: str | None, binding: Secret | None) -> str | None:
    """The address of the reset whose sign-in ``binding`` seals with ``state``; None when
    the callback is not a reset's of this browser (then it may be a request's)."""
    if not state or binding is None or not state.isascii():
        return None
    encoded, _, rest = binding.reveal().partition(".")
    expires, _, mac = rest.partition(".")
    if not expires.isdigit() or len(expires) > 12:
        return None
    if not hmac.compare_digest(_seal(pepper, state, encoded, int(expires)), mac):
        return None
    try:
        return base64.urlsafe_b64decode(encoded.encode()).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None


def finish(
    store: Store,
    settings: SiteConfig,
    pepper: bytes,
    *,
    state: str | None,
    code: Secret | None,
    error: str | None,
    binding: Secret | None,
    now: int,
) -> tuple[str, reset.ResetStarted]:
    """The provider's callback for a reset: the address and the code step's answer (its
    messages still to send).

    Raises:
        OidcStateInvalid: the binding does not seal this state (not this browser's sign-in).
        OidcStateExpired: the sign-in took longer than ``[oidc] state_ttl_seconds``.
        OidcProviderRefused, OidcUnavailable: as :func:`mailprov.services.oidc.id_token_for`
            (audited as ``owner.reset-identity-failed``).
        ResetEnded, IdentityGateError, IdentityMismatch, RecoveryUnreachable: as
            :func:`mailprov.services.reset.verify_identity`.
    """
    oidc.section(settings)
    secret = oidc.client_secret(settings)
    address = binding_address(pepper, state, binding)
    if address is None or state is None or binding is None:
        raise OidcStateInvalid
    expires = int(binding.reveal().split(".")[1])
    if now > expires:
        raise OidcStateExpired
    verifier = protocol.derive(pepper, "pkce", state)
    try:
        token = oidc.id_token_for(settings, secret, code=code, error=error, verifier=verifier)
        source = oidc.token_source(settings, "", via="oidc-reset")
    except (OidcProviderRefused, OidcUnavailable) as exc:
        details: dict[str, object] = {"error": exc.code, "via": "oidc"}
        if "provider_error" in exc.details:
            details["provider_error"] = exc.details["provider_error"]
        reset.identity_failed(store, address, now, details)
        raise
    found = reset.verify_identity(store, settings, pepper, address, token, now=now, source=source)
    return address, found
