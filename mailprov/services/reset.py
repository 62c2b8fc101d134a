"""Password reset without the old password: a code to a verified contact, or the gate again.

Two routes, each allowed by ``[passwords] reset_via``:

* ``contact``: :func:`start` sends one code to every verified recovery contact;
  :func:`confirm` with that code gives a *reset grant*.
* ``identity``: :func:`start` answers a nonce; the owner has the identity provider
  issue a token with it, and :func:`verify_identity` runs the gate's token checks
  (the same as ``request verify``: signature, issuer, audience, times, nonce,
  assurance, replay) and requires the token's ``iss|sub`` to be the account bound
  to the mailbox at provisioning. Only then is the code sent to the verified
  contacts; :func:`confirm` gives the grant. So this route asks for both the
  identity and a contact.

:func:`set_password` spends the grant: the new password (policy-checked) is set,
every session of the mailbox ends, its sign-in failures and lockout are cleared,
and a ``password-reset`` security event is audited and sent to the contacts.

**No account enumeration.** :func:`start` does the same work and gives the same
answer for an address with no mailbox (or a disabled one, or one with no
verified contact): it stores a challenge whose code nobody receives, so the
limits, the later code checks and their errors behave alike. The code is sent
after the answer (:func:`deliver`, run in the background by the web layer), so
the answer's timing does not depend on the mail server either.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import and_, insert, select, update
from sqlalchemy.exc import IntegrityError

from mailprov.errors import (
    IdentityGateError,
    IdentityMismatch,
    MailprovError,
    RecoveryUnreachable,
    ResetEnded,
    ResetRouteDisabled,
    idg_error,
)
from mailprov.identity import codes
from mailprov.identity.tokens import TokenPolicy, verify_token
from mailprov.model import CodeState
from mailprov.rules.addresses import parse_address
from mailprov.rules.contacts import mask
from mailprov.services import accounts, owner, owner_codes
from mailprov.services.contacts import verified_contacts
from mailprov.services.trust import load_keys
from mailprov.store import audit
from mailprov.store.schema import domains, mailboxes, seen_token
from mailprov.system import notify

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from mailprov.identity.tokens import TrustedKeys, VerifiedIdentity
    from mailprov.model import Secret
    from mailprov.services.provisioning import TokenSource
    from mailprov.settings import SiteConfig
    from mailprov.store import Store

log = logging.getLogger(__name__)

CONTACT, IDENTITY = "contact", "identity"
#: How long a reset by identity waits for its token (the round trip to the identity provider).
NONCE_SECONDS = 1800
#: How long a reset grant may be spent.
GRANT_SECONDS = 600
ANSWER = (
    "If {address} is a mailbox here with a verified recovery contact, a code was sent to "
    "its recovery contacts."
)
CODE_SENT = "Identity proven: a code was sent to the recovery contacts of {address}."
IDENTITY_ANSWER = (
    "Have your identity provider issue a token with this nonce, then send it with the address."
)


@dataclass(frozen=True)
class ResetStarted:
    """A started step: what to tell the client, and the codes to send (never shown or logged)."""

    via: str
    message: str
    expires_at: int
    nonce: str | None = None
    messages: tuple[notify.Message, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class Grant:
    """A reset grant: spend it with :func:`set_password` before ``expires_at``."""

    token: Secret
    expires_at: int


@dataclass(frozen=True)
class ResetDone:
    """A password set by reset."""

    address: str
    sessions_ended: int


def _route(settings: SiteConfig, via: str) -> None:
    if via not in settings.passwords.reset_via:
        allowed = ", ".join(settings.passwords.reset_via) or "none"
        raise ResetRouteDisabled(
            f"password reset by {via} is not enabled here (allowed: {allowed})"
        )


def _active_mailbox(conn: Connection, address: str) -> str | None:
    """The gate account of an active mailbox of an active domain ('' if none is bound);
    None when there is no such mailbox."""
    row = conn.execute(
        select(mailboxes.c.identity)
        .join(domains, domains.c.id == mailboxes.c.domain_id)
        .where(and_(mailboxes.c.address == address, mailboxes.c.active, domains.c.active))
    ).first()
    return None if row is None else str(row.identity or "")


def reset_nonce(pepper: bytes, cid: str, address: str) -> str:
    """The nonce of a reset by identity: derived from its challenge, so it is never stored."""
    return codes.code_mac(pepper, cid, address, owner_codes.RESET_NONCE, "nonce")


def _code_messages(
    address: str, contacts: list[str], code: str, minutes: int
) -> tuple[notify.Message, ...]:
    body = (
        f"Your code to reset the password of the mailbox {address} is {code}.\n"
        f"It expires in {minutes} minutes. If you did not ask for a reset, ignore this "
        f"message: your password stays as it is.\n"
    )
    return tuple(notify.Message(c, f"Password reset code for {address}", body) for c in contacts)


def start(
    store: Store,
    settings: SiteConfig,
    pepper: bytes,
    raw_address: str,
    *,
    via: str,
    client: str,
    now: int,
) -> ResetStarted:
    """Start a reset of ``raw_address`` by ``via``; the same answer whether it exists or not.

    Raises:
        ResetRouteDisabled: ``via`` is not in ``[passwords] reset_via``.
        InvalidAddress: the address is malformed (no mailbox could have it).
        RateLimited: too many resets of this address, or from this client (IDG-K06).
    """
    _route(settings, via)
    address = str(parse_address(raw_address))
    ident = settings.identity
    with store.begin() as conn:
        owner_codes.purge(conn, now)
        owner_codes.check_rate(
            conn,
            ident,
            purposes=owner_codes.RESET_STARTS,
            now=now,
            address=address,
            client=client,
            per_client=settings.passwords.reset_per_client_hour,
        )
        found = _active_mailbox(conn, address)
        contacts = verified_contacts(conn, address)
        owner_codes.supersede(conn, address, owner_codes.RESET_STARTS)
        by_contact = via == CONTACT
        issued = owner_codes.issue(
            conn,
            pepper,
            address=address,
            purpose=owner_codes.RESET_CODE if by_contact else owner_codes.RESET_NONCE,
            destination=via,
            now=now,
            ttl=ident.code_ttl_seconds if by_contact else NONCE_SECONDS,
            client=client,
        )
        audit.append(
            conn,
            at=now,
            actor=f"client:{client[:64]}",
            action="owner.reset-start",
            target=address,
            details={"via": via},
        )
    if not by_contact:
        nonce = reset_nonce(pepper, issued.cid, address)
        return ResetStarted(via, IDENTITY_ANSWER, issued.expires_at, nonce)
    send = found is not None
    messages = _code_messages(
        address, contacts if send else [], issued.secret.reveal(), ident.code_ttl_seconds // 60
    )
    return ResetStarted(via, ANSWER.format(address=address), issued.expires_at, None, messages)


def deliver(settings: SiteConfig, started: ResetStarted) -> int:
    """Send a step's codes; return how many arrived. Failures are logged, never the code."""
    sent = 0
    for message in started.messages:
        try:
            notify.send(settings.notify, message, base_dir=settings.base_dir)
            sent += 1
        except MailprovError as exc:
            log.warning(
                "password-reset code not delivered to %s: %s", mask(message.destination), exc.code
            )
    return sent


def identity_failed(store: Store, address: str, now: int, details: dict[str, object]) -> None:
    """Audit a refused proof of identity for a reset (``owner.reset-identity-failed``)."""
    with store.begin() as conn:
        audit.append(
            conn,
            at=now,
            actor=f"reset:{address}",
            action="owner.reset-identity-failed",
            target=address,
            details=details,
        )


def _check_token(
    store: Store,
    settings: SiteConfig,
    token: Secret,
    nonce: str,
    address: str,
    now: int,
    source: TokenSource | None,
) -> VerifiedIdentity:
    ident = settings.identity
    policy = TokenPolicy(
        ident.token_type, ident.max_verification_age_days, tuple(ident.required_claims)
    )
    keys = load_keys(store)
    if source is not None:
        keys, policy = source.keys, source.policy

    def check(keys: TrustedKeys) -> VerifiedIdentity:
        return verify_token(token.reveal(), keys=keys, now=now, nonce=nonce, policy=policy)

    try:
        try:
            return check(keys)
        except IdentityGateError as exc:
            # The provider may have rotated its keys: fetch them once more (as a request does).
            if source is None or source.refresh is None:
                raise
            if exc.details.get("idg") not in {"IDG-T04", "IDG-T06"}:
                raise
            return check(source.refresh())
    except IdentityGateError as exc:
        identity_failed(store, address, now, {"idg": exc.details.get("idg"), "error": exc.code})
        raise


def verify_identity(
    store: Store,
    settings: SiteConfig,
    pepper: bytes,
    raw_address: str,
    token: Secret,
    *,
    now: int,
    source: TokenSource | None = None,
) -> ResetStarted:
    """The token of a reset by identity: the gate's checks, then the bound account; a code follows.

    Without ``source`` the token was given by the owner: the trust store's keys and
    ``[identity]``'s policy. With one (the reset by redirect, :mod:`.reset_redirect`): the
    OpenID Connect provider's keys and ``[oidc]``'s policy. The nonce is always the reset's.

    Raises:
        ResetRouteDisabled: the identity route is not enabled.
        ResetEnded: no reset by identity is waiting for this address (or it expired).
        IdentityGateError: a check of the token failed (its IDG code says which).
        IdentityMismatch: the token is for another subject than the one bound to the mailbox
            (or there is no such mailbox, or it has no bound identity).
        RecoveryUnreachable: the mailbox has no verified contact to send the code to.
    """
    _route(settings, IDENTITY)
    address = str(parse_address(raw_address))
    with store.read() as conn:
        row = owner_codes.newest(conn, address, owner_codes.RESET_NONCE)
    if row is None or row.state != CodeState.LIVE or now > row.expires_at:
        raise ResetEnded(f"no password reset by identity is waiting for {address}")
    nonce = reset_nonce(pepper, row.id, address)
    verified = _check_token(store, settings, token, nonce, address, now, source)
    evidence = {"iss": verified.iss, "sub": verified.sub, "jti": verified.jti, "kid": verified.kid}
    with store.read() as conn:
        bound = _active_mailbox(conn, address) or ""
    if not hmac.compare_digest(bound.encode(), verified.account.encode()):
        identity_failed(store, address, now, {"error": IdentityMismatch.code, **evidence})
        raise IdentityMismatch(
            f"the verified identity is not the one {address} was provisioned for"
        )
    ident = settings.identity
    try:
        with store.begin() as conn:
            # The replay insert (check 19) in the transaction that consumes the reset's nonce.
            conn.execute(
                insert(seen_token).values(
                    iss=verified.iss, jti=verified.jti, exp=verified.exp, used_at=now
                )
            )
            contacts = verified_contacts(conn, address)
            if not contacts:
                raise RecoveryUnreachable(
                    f"{address} has no verified recovery contact to send the code to",
                    hint="ask the administrator to set a new password ('mailprov mailbox passwd')",
                )
            issued = owner_codes.rearm(
                conn,
                pepper,
                row,
                purpose=owner_codes.RESET_CODE,
                now=now,
                ttl=ident.code_ttl_seconds,
            )
            if issued is None:
                raise ResetEnded(f"the password reset of {address} was replaced by a newer one")
            audit.append(
                conn,
                at=now,
                actor=f"reset:{address}",
                action="owner.reset-identity",
                target=address,
                details=evidence,
            )
    except IntegrityError:
        raise idg_error("IDG-T14") from None
    messages = _code_messages(
        address, contacts, issued.secret.reveal(), ident.code_ttl_seconds // 60
    )
    sent = CODE_SENT.format(address=address)
    return ResetStarted(IDENTITY, sent, issued.expires_at, None, messages)


def confirm(
    store: Store, settings: SiteConfig, pepper: bytes, raw_address: str, code: Secret, *, now: int
) -> Grant:
    """The code of a reset: right, it gives a grant; wrong, it counts (IDG-K checks).

    An address with no mailbox has a challenge too, whose code nobody has: the same errors.
    """
    address = str(parse_address(raw_address))
    with store.begin() as conn:
        result = owner_codes.check(
            conn,
            settings.identity,
            pepper,
            address=address,
            purpose=owner_codes.RESET_CODE,
            code=code.reveal(),
            now=now,
        )
        if result.error is None:
            route = str(owner_codes.newest(conn, address, owner_codes.RESET_CODE).destination)
            grant = owner_codes.issue_grant(
                conn, pepper, address=address, destination=route, now=now, ttl=GRANT_SECONDS
            )
            audit.append(
                conn,
                at=now,
                actor=f"reset:{address}",
                action="owner.reset-confirm",
                target=address,
                details={"via": route},
            )
    if result.error is not None:
        raise result.error
    return Grant(grant.secret, grant.expires_at)


def set_password(
    store: Store, settings: SiteConfig, pepper: bytes, grant: Secret, new: Secret, *, now: int
) -> ResetDone:
    """Spend a reset grant: set the new password, end every session and app password, clear
    sign-in failures.

    Raises:
        ResetEnded: the grant is unknown, used or expired, or the mailbox is gone or disabled.
        PasswordPolicy: the new password breaks the policy (the grant stays usable).
    """
    with store.read() as conn:
        row = owner_codes.live_grant(conn, pepper, grant.reveal(), now)
        found = _active_mailbox(conn, row.address) if row is not None else None
    if row is None or found is None:
        raise ResetEnded
    address = str(row.address)
    prepared = accounts.prepare_password(settings.passwords, parse_address(address), password=new)
    with store.begin() as conn:
        if not owner_codes.use(conn, row.id):
            raise ResetEnded
        conn.execute(
            update(mailboxes)
            .where(mailboxes.c.address == address)
            .values(
                password_hash=prepared.hash,
                password_changed_at=now,
                must_change=False,
                temp_password_expires_at=None,
                updated_at=now,
            )
        )
        ended = owner.end_sessions(conn, address)
        revoked = owner.end_app_passwords(conn, address)
        owner.clear_failures(conn, address)
        owner_codes.supersede(conn, address, owner_codes.RESET_STARTS)
        notices = owner.security_event(
            conn,
            address,
            "password-reset",
            now=now,
            actor=f"reset:{address}",
            details={
                "via": row.destination,
                "sessions_ended": ended,
                "app_passwords_revoked": revoked,
            },
        )
    owner.send_security_notices(settings, address, "password-reset", notices)
    return ResetDone(address, ended)
