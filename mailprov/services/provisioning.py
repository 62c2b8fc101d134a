"""Provisioning requests: open -> identity-verified -> confirmed -> provisioned.

Side states: ``rejected`` (the verified name does not match, or the mailbox
could not be created), ``expired`` (not finished in time), ``locked`` (5 wrong
codes; ``resend`` unlocks with a new code), ``cancelled``. A failed identity
check leaves the request ``open`` so the requester can retry with a new proof.
Every transition is audited with evidence (``iss``/``sub``/``jti`` or the key's
SPKI fingerprint), never the token, the code or personal data. Every error
names the request ID. Codes and notices go out through ``send`` (see
:mod:`mailprov.system.notify`), after the transaction that created them commits.
Every state change the requester must know of (opened, identity-verified,
locked, rejected, expired, cancelled, provisioned) is a notice to the recovery
contact (:mod:`mailprov.services.request_notices`); one that cannot be sent is
a warning on the result (``Request.warnings``) or on the error raised
(``details["warnings"]``), never a reason to undo the change.
"""

from __future__ import annotations

import secrets
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from mailprov.errors import (
    AddressTaken,
    ClientRateLimited,
    DomainHandleRequired,
    DomainNotVerified,
    IdentityGateError,
    InvalidValue,
    MailprovError,
    NotFound,
    RequestExpired,
    TermsNotAccepted,
    UnknownDomain,
    WrongRequestState,
    idg_error,
)
from mailprov.identity.certificates import CHALLENGE_PREFIX, verify_certificate
from mailprov.identity.tokens import (
    TokenPolicy,
    TrustedKeys,
    VerifiedIdentity,
    normalise_name,
    owner_matches,
    verify_token,
)
from mailprov.model import LIVE_REQUEST_STATES, RequestKind, RequestState, Secret, iso
from mailprov.rules.addresses import parse_address
from mailprov.rules.contacts import parse_contact
from mailprov.rules.sizes import parse_size
from mailprov.services import accounts, confirmation, contacts, request_notices
from mailprov.services.homes import new_home
from mailprov.services.request_notices import Notice
from mailprov.services.trust import load_anchors, load_keys
from mailprov.store import audit
from mailprov.store.schema import domains, key_bindings, requests, seen_token
from mailprov.system.notify import Message

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from mailprov.identity.certificates import CertificateIdentity
    from mailprov.model import Mailbox
    from mailprov.services.accounts import Actor
    from mailprov.settings import SiteConfig
    from mailprov.store import Store

Sender = request_notices.Sender
LIVE = LIVE_REQUEST_STATES
ID_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"  # no 0/O, 1/I/L, U: safe to read aloud
LEEWAY = 60
HOUR = 3600


@dataclass(frozen=True)
class Request:
    """A provisioning request as shown to users (no secrets, no personal data beyond the name)."""

    id: str
    address: str
    kind: RequestKind
    recovery: str
    state: RequestState
    nonce: str
    challenge: str | None
    challenge_expires_at: int | None
    display_name: str
    evidence: dict[str, str]
    reason: str | None
    created_at: int
    updated_at: int
    expires_at: int
    #: Notices to the recovery contact that could not be sent (interfaces show them).
    warnings: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "id": self.id,
            "address": self.address,
            "kind": self.kind,
            "recovery": self.recovery,
            "state": self.state,
            "nonce": self.nonce,
            "challenge": self.challenge,
            "challenge_expires_at": iso(self.challenge_expires_at),
            "name": self.display_name,
            "evidence": self.evidence,
            "reason": self.reason,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "expires_at": iso(self.expires_at),
        }


def _request(row: Any) -> Request:
    evidence = {
        k: getattr(row, f"evidence_{k}")
        for k in ("iss", "sub", "jti")
        if getattr(row, f"evidence_{k}")
    }
    if row.spki_sha256:
        evidence["spki_sha256"] = row.spki_sha256
    live = row.state == RequestState.OPEN
    return Request(
        row.id,
        row.address,
        RequestKind(row.kind),
        row.recovery,
        RequestState(row.state),
        row.nonce if live else "",
        row.challenge if live else None,
        row.challenge_expires_at if live else None,
        row.display_name or row.requested_name,
        evidence,
        row.reason,
        row.created_at,
        row.updated_at,
        row.expires_at,
    )


def normalise_id(raw: str) -> str:
    """A request ID as typed (any case, spaces) -> its stored form."""
    return "".join(raw.split()).upper()


def _new_id() -> str:
    chars = "".join(secrets.choice(ID_ALPHABET) for _ in range(8))
    return f"{chars[:4]}-{chars[4:]}"


def new_challenge(request_id: str) -> str:
    """A certificate challenge: 32 random bytes bound to the request ID."""
    return f"{CHALLENGE_PREFIX}.{request_id}.{secrets.token_urlsafe(32)}"


def _row(conn: Connection, request_id: str) -> Any:
    row = conn.execute(select(requests).where(requests.c.id == request_id)).first()
    if row is None:
        raise NotFound(
            f"request {request_id} does not exist",
            hint="see 'mailprov request list'",
            request_id=request_id,
        )
    return row


def _transition(
    conn: Connection, row: Any, state: RequestState, actor: Actor, action: str, **extra: Any
) -> None:
    details = {"from": row.state, "to": state, **extra.pop("details", {})}
    conn.execute(
        update(requests)
        .where(requests.c.id == row.id)
        .values(state=state, updated_at=actor.now, **extra)
    )
    audit.append(
        conn, at=actor.now, actor=actor.name, action=action, target=row.id, details=details
    )


def _notice(row: Any, event: str, reason: str | None = None) -> Notice:
    return Notice(event, row.id, row.address, row.recovery, reason)


def _warn(exc: MailprovError, warnings: list[str]) -> MailprovError:
    """Add notice warnings to an error about to be raised (its JSON shows them)."""
    if warnings:
        exc.details.setdefault("warnings", []).extend(warnings)
    return exc


def _check_name(name: str) -> str:
    display = " ".join(name.split())[:256]
    if any(unicodedata.category(c) in {"Cc", "Cs"} for c in display):
        raise InvalidValue("the name holds control characters", hint="give the name as plain text")
    return display


def _audit_failure(
    store: Store, request_id: str, exc: MailprovError, actor: Actor, action: str
) -> None:
    details = {"idg": exc.details.get("idg"), "error": exc.code}
    with store.begin() as conn:
        audit.append(
            conn, at=actor.now, actor=actor.name, action=action, target=request_id, details=details
        )


def _check_recovery(raw: str, address: str, *, phones: bool) -> str:
    """A request's recovery contact: a mail address, or a phone number when SMS can be sent."""
    return parse_contact(raw, phones=phones, mailbox=address).value


def _check_request_rate(conn: Connection, actor: Actor, per_hour: int) -> None:
    """Refuse a request beyond ``per_hour`` from one actor within the last hour."""
    times = sorted(
        conn.execute(
            select(requests.c.created_at).where(
                requests.c.actor == actor.name, requests.c.created_at > actor.now - HOUR
            )
        ).scalars()
    )
    if len(times) >= per_hour:
        wait = max(times[-per_hour] + HOUR - actor.now, 1)
        raise ClientRateLimited(
            f"{per_hour} requests were opened from this client within the last hour; "
            "nothing was requested",
            hint=f"wait {wait} s, or follow the requests already opened by their numbers",
        )


def open_request(
    store: Store,
    settings: SiteConfig,
    *,
    address: str,
    kind: str,
    recovery: str,
    name: str = "",
    accept_terms: bool,
    send: Sender,
    actor: Actor,
    handle_mac: str | None = None,
    per_actor_hour: int | None = None,
    domain_bound: Callable[[str | None], bool] | None = None,
) -> Request:
    """Open a request: check terms, recovery address, the address and (corporate) the domain.

    ``handle_mac`` is the stored form of the requester's secret handle (see
    :mod:`mailprov.services.requester`); the recovery contact is told ("opened").
    ``per_actor_hour``: refuse when ``actor`` (e.g. one client address) opened this many
    requests in the last hour — counted in the transaction that inserts, so a burst of
    parallel calls cannot slip past it.
    """
    if not accept_terms:
        raise TermsNotAccepted("the terms of service were not accepted; nothing was requested")
    if kind not in tuple(RequestKind):
        raise InvalidValue(f"--kind must be {' or '.join(RequestKind)}, not {kind!r:.20}")
    kind = RequestKind(kind)
    display = _check_name(name)
    parsed = accounts.check_available(store, address)
    recovery = _check_recovery(recovery, str(parsed), phones=bool(settings.notify.hook))
    request_id = _new_id()
    with store.begin() as conn:
        if per_actor_hour is not None:
            _check_request_rate(conn, actor, per_actor_hour)
        domain = conn.execute(select(domains).where(domains.c.name == parsed.domain)).one()
        if kind == RequestKind.CORPORATE and domain.verified_at is None:
            raise DomainNotVerified(
                f"{parsed.domain} has no proven owner; a corporate mailbox needs one"
            )
        if not domain.active:
            raise UnknownDomain(
                f"{parsed.domain} is not active here (its ownership proof is pending)",
                hint=f"finish it with 'mailprov domain verify {parsed.domain}'",
            )
        if domain_bound is not None and not domain_bound(domain.proof_mac):
            raise DomainHandleRequired(
                f"{parsed.domain} was proven through this site by the person who proved it: "
                "a request at it needs the domain handle of that proof; nothing was requested"
            )
        if conn.execute(
            select(requests.c.id).where(
                requests.c.address == str(parsed), requests.c.state.in_(LIVE)
            )
        ).first():
            raise AddressTaken(
                f"{parsed} is already requested by a pending request",
                suggestions=accounts.free_suggestions(conn, parsed),
            )
        challenge = new_challenge(request_id)
        conn.execute(
            insert(requests).values(
                id=request_id,
                address=str(parsed),
                kind=kind,
                recovery=recovery,
                requested_name=display,
                display_name="",
                state=RequestState.OPEN,
                nonce=secrets.token_urlsafe(24),
                challenge=challenge,
                challenge_expires_at=actor.now + settings.identity.challenge_ttl_seconds,
                actor=actor.name,
                created_at=actor.now,
                updated_at=actor.now,
                expires_at=actor.now + settings.identity.request_ttl_hours * 3600,
                handle_mac=handle_mac,
            )
        )
        audit.append(
            conn,
            at=actor.now,
            actor=actor.name,
            action="request.open",
            target=request_id,
            details={"address": str(parsed), "kind": kind, "state": RequestState.OPEN},
        )
        row = _row(conn, request_id)
    warnings = request_notices.announce(settings, send, [_notice(row, "opened")])
    return replace(_request(row), warnings=tuple(warnings))


def _live_row(
    conn: Connection, request_id: str, now: int, allowed: tuple[RequestState, ...]
) -> Any:
    row = _row(conn, request_id)
    if row.state in LIVE and row.state != RequestState.CONFIRMED and now > row.expires_at:
        raise RequestExpired(f"the request expired at {iso(row.expires_at)}", request_id=request_id)
    if row.state not in allowed:
        raise WrongRequestState(
            f"the request is {row.state}; this needs it to be {' or '.join(allowed)}",
            request_id=request_id,
        )
    return row


def _expire_now(
    store: Store, settings: SiteConfig, request_id: str, actor: Actor, send: Sender
) -> list[str]:
    with store.begin() as conn:
        row = _row(conn, request_id)
        if row.state not in LIVE:
            return []
        _transition(conn, row, RequestState.EXPIRED, actor, "request.expire", reason="expired")
    return request_notices.announce(settings, send, [_notice(row, "expired")])


def expire_if_late(
    store: Store, settings: SiteConfig, request_id: str, *, send: Sender, actor: Actor
) -> list[str]:
    """Expire the request if it is unfinished past its time (telling its recovery contact);
    returns notice warnings. A request already past that stage is left alone.
    """
    with store.read() as conn:
        row = _row(conn, request_id)
    late = row.state in LIVE and row.state != RequestState.CONFIRMED and actor.now > row.expires_at
    return _expire_now(store, settings, request_id, actor, send) if late else []


def _guard(
    store: Store,
    settings: SiteConfig,
    request_id: str,
    actor: Actor,
    action: str,
    func: Callable[[], Any],
    send: Sender,
) -> Any:
    """Run a step; name the request in any error, audit gate failures, expire late requests."""
    try:
        return func()
    except RequestExpired as exc:
        _warn(exc, _expire_now(store, settings, request_id, actor, send))
        raise
    except MailprovError as exc:
        if exc.request_id is None:
            exc.request_id = request_id
        if isinstance(exc, IdentityGateError) and exc.details.get("idg"):
            _audit_failure(store, request_id, exc, actor, action + "-failed")
        raise


def _send_code(
    store: Store,
    settings: SiteConfig,
    send: Sender,
    *,
    request_id: str,
    issued: Any,
    destination: str,
    actor: Actor,
) -> str:
    minutes = settings.identity.code_ttl_seconds // 60
    body = (
        f"Your confirmation code for mail request {request_id} is {issued.code.reveal()}.\n"
        f"It expires in {minutes} minutes. If you did not ask for a mailbox, ignore this message.\n"
    )
    try:
        return send(Message(destination, f"Confirmation code for request {request_id}", body))
    except MailprovError:
        with store.begin() as conn:
            confirmation.mark_undelivered(conn, issued.cid)
            audit.append(
                conn,
                at=actor.now,
                actor=actor.name,
                action="request.code-undelivered",
                target=request_id,
            )
        raise


@dataclass(frozen=True)
class TokenSource:
    """Where a token's checks take their keys, policy and nonce from, when the token did
    not come to ``request verify`` but from an OpenID Connect provider's token endpoint
    (:mod:`mailprov.services.oidc`): that provider's keys, ``[oidc]``'s policy, and the
    nonce of the sign-in. The checks themselves are the same."""

    keys: TrustedKeys
    policy: TokenPolicy
    nonce: str
    via: str
    #: The provider's keys fetched again (key rotation): tried once on IDG-T04/T06.
    refresh: Callable[[], TrustedKeys] | None = None


def verify_with_token(
    store: Store,
    settings: SiteConfig,
    request_id: str,
    raw: Secret,
    *,
    pepper: bytes,
    send: Sender,
    actor: Actor,
    source: TokenSource | None = None,
) -> Request:
    """Checks (A) 1-19 for the request, then send a code to the recovery address.

    Without ``source`` the token was given by the requester: the trust store's keys,
    ``[identity]``'s policy and the request's nonce. With one (identity by redirect),
    its keys, policy and nonce.
    """

    def step() -> Request:
        with store.read() as conn:
            row = _live_row(conn, request_id, actor.now, (RequestState.OPEN,))
        ident = settings.identity
        if source is None:
            keys, nonce = load_keys(store), row.nonce
            policy = TokenPolicy(
                ident.token_type, ident.max_verification_age_days, tuple(ident.required_claims)
            )
        else:
            keys, nonce, policy = source.keys, source.nonce, source.policy

        def check(keys: TrustedKeys) -> VerifiedIdentity:
            return verify_token(
                raw.reveal(),
                keys=keys,
                now=actor.now,
                nonce=nonce,
                policy=policy,
                request_id=request_id,
            )

        try:
            verified = check(keys)
        except IdentityGateError as exc:
            if source is None or source.refresh is None:
                raise
            if exc.details.get("idg") not in {"IDG-T04", "IDG-T06"}:
                raise
            verified = check(source.refresh())
        if row.requested_name and not owner_matches(
            row.requested_name, verified.claims, yo_as_ye=ident.match_yo_as_ye
        ):
            warnings = _reject(store, settings, request_id, "IDG-V05", actor, send)
            raise _warn(idg_error("IDG-V05", request_id=request_id), warnings)
        return _mark_verified(
            store,
            settings,
            row,
            verified,
            None,
            pepper=pepper,
            send=send,
            actor=actor,
            via=source.via if source else "token",
        )

    return _guard(store, settings, request_id, actor, "request.verify", step, send)  # type: ignore[no-any-return]


def verify_with_certificate(
    store: Store,
    settings: SiteConfig,
    request_id: str,
    certificate: bytes,
    signature: bytes,
    *,
    pepper: bytes,
    send: Sender,
    actor: Actor,
) -> Request:
    """Checks (B) C01/C04/C07-C15 for the request, then send a code to the recovery address."""

    def step() -> Request:
        with store.read() as conn:
            row = _live_row(conn, request_id, actor.now, (RequestState.OPEN,))
        ident = settings.identity
        valid = bool(row.challenge) and (row.challenge_expires_at or 0) >= actor.now
        cert = verify_certificate(
            certificate,
            signature=signature,
            challenge=row.challenge or "",
            challenge_valid=valid,
            anchors=load_anchors(store),
            now=actor.now,
            ekus=ident.extra_ekus,
            max_depth=ident.max_chain_depth,
            request_id=request_id,
        )
        with store.read() as conn:
            if conn.execute(
                select(key_bindings).where(key_bindings.c.spki_sha256 == cert.spki_sha256)
            ).first():
                raise idg_error("IDG-C14", request_id=request_id)
        if row.requested_name and normalise_name(
            row.requested_name, yo_as_ye=ident.match_yo_as_ye
        ) != normalise_name(cert.common_name, yo_as_ye=ident.match_yo_as_ye):
            warnings = _reject(store, settings, request_id, "IDG-C15", actor, send)
            raise _warn(idg_error("IDG-C15", request_id=request_id), warnings)
        return _mark_verified(
            store, settings, row, None, cert, pepper=pepper, send=send, actor=actor
        )

    return _guard(store, settings, request_id, actor, "request.verify", step, send)  # type: ignore[no-any-return]


def _reject(
    store: Store, settings: SiteConfig, request_id: str, idg: str, actor: Actor, send: Sender
) -> list[str]:
    """Reject a live request for check ``idg``; tell the recovery contact; return warnings."""
    with store.begin() as conn:
        row = _row(conn, request_id)
        if row.state not in LIVE:
            return []
        _transition(
            conn,
            row,
            RequestState.REJECTED,
            actor,
            "request.reject",
            reason=idg,
            details={"idg": idg},
        )
    return request_notices.announce(settings, send, [_notice(row, "rejected", idg)])


def _mark_verified(
    store: Store,
    settings: SiteConfig,
    row: Any,
    token: VerifiedIdentity | None,
    cert: CertificateIdentity | None,
    *,
    pepper: bytes,
    send: Sender,
    actor: Actor,
    via: str | None = None,
) -> Request:
    """Consume the proof (replay insert / challenge) and issue the first code, in one go.

    ``via`` names the route a token came by in the audit record (``token``, ``oidc``).
    """
    account = token.account if token else cert.account  # type: ignore[union-attr]
    rid = row.id
    try:
        with store.begin() as conn:
            if token is not None:
                # Check 19: the replay insert, first, in the transaction that consumes the request.
                conn.execute(
                    insert(seen_token).values(
                        iss=token.iss, jti=token.jti, exp=token.exp, used_at=actor.now
                    )
                )
                evidence = {
                    "iss": token.iss,
                    "sub": token.sub,
                    "jti": token.jti,
                    "kid": token.kid,
                    "framework": token.framework,
                    "level": token.level,
                    "via": via or "token",
                }
                values = {
                    "evidence_iss": token.iss,
                    "evidence_sub": token.sub,
                    "evidence_jti": token.jti,
                    "display_name": token.display_name,
                }
                consumed = requests.c.nonce == row.nonce
            else:
                assert cert is not None  # noqa: S101  (one of the two proofs is given)
                evidence = {"spki_sha256": cert.spki_sha256}
                values = {
                    "spki_sha256": cert.spki_sha256,
                    "display_name": row.requested_name or cert.common_name,
                }
                consumed = requests.c.challenge == row.challenge
            done = conn.execute(
                update(requests)
                .where(requests.c.id == rid, requests.c.state == RequestState.OPEN, consumed)
                .values(
                    state=RequestState.IDENTITY_VERIFIED,
                    account=account,
                    challenge=None,
                    challenge_expires_at=None,
                    updated_at=actor.now,
                    **values,
                )
            )
            if done.rowcount != 1:
                raise idg_error("IDG-T14" if token else "IDG-C13", request_id=rid)
            # Step 20 (the code) only after the proof is consumed; failing here rolls it all back.
            confirmation.account_lock(conn, account, actor.now, request_id=rid)
            confirmation.check_rate(
                conn,
                settings.identity,
                account=account,
                destination=row.recovery,
                now=actor.now,
                request_id=rid,
            )
            audit.append(
                conn,
                at=actor.now,
                actor=actor.name,
                action="request.verify",
                target=rid,
                details={
                    "from": RequestState.OPEN,
                    "to": RequestState.IDENTITY_VERIFIED,
                    **evidence,
                },
            )
            issued = confirmation.issue(
                conn,
                settings.identity,
                pepper,
                request_id=rid,
                account=account,
                destination=row.recovery,
                now=actor.now,
            )
    except IntegrityError:
        raise idg_error("IDG-T14", request_id=rid) from None
    # The notice first: the code is the message the requester acts on (and, with an SMS
    # hook, the last one the gateway sees).
    warnings = request_notices.announce(settings, send, [_notice(row, "identity-verified")])
    try:
        _send_code(
            store,
            settings,
            send,
            request_id=rid,
            issued=issued,
            destination=row.recovery,
            actor=actor,
        )
    except MailprovError as exc:
        _warn(exc, warnings)
        raise
    return replace(get_request(store, rid), warnings=tuple(warnings))


def resend(
    store: Store,
    settings: SiteConfig,
    request_id: str,
    *,
    pepper: bytes,
    send: Sender,
    actor: Actor,
) -> Request:
    """Send a new code (limits of §5.1); a locked request becomes identity-verified again."""

    def step() -> Request:
        with store.begin() as conn:
            row = _live_row(
                conn, request_id, actor.now, (RequestState.IDENTITY_VERIFIED, RequestState.LOCKED)
            )
            confirmation.account_lock(conn, row.account, actor.now, request_id=request_id)
            confirmation.check_rate(
                conn,
                settings.identity,
                account=row.account,
                destination=row.recovery,
                now=actor.now,
                request_id=request_id,
            )
            issued = confirmation.issue(
                conn,
                settings.identity,
                pepper,
                request_id=request_id,
                account=row.account,
                destination=row.recovery,
                now=actor.now,
            )
            if row.state == RequestState.LOCKED:
                _transition(conn, row, RequestState.IDENTITY_VERIFIED, actor, "request.unlock")
            audit.append(
                conn, at=actor.now, actor=actor.name, action="request.resend", target=request_id
            )
        _send_code(
            store,
            settings,
            send,
            request_id=request_id,
            issued=issued,
            destination=row.recovery,
            actor=actor,
        )
        return get_request(store, request_id)

    return _guard(store, settings, request_id, actor, "request.resend", step, send)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Provisioned:
    """The result of a confirmed request: the mailbox and its temporary password (shown once)."""

    request: Request
    mailbox: Mailbox
    password: Secret
    notice_sent: bool


def confirm(
    store: Store,
    settings: SiteConfig,
    request_id: str,
    code: Secret,
    *,
    pepper: bytes,
    send: Sender,
    actor: Actor,
) -> Provisioned:
    """Check the code; on success create the mailbox with a temporary password and mail a notice."""

    def step() -> Provisioned:
        with store.read() as conn:
            row = _live_row(
                conn,
                request_id,
                actor.now,
                (
                    RequestState.IDENTITY_VERIFIED,
                    RequestState.LOCKED,
                    RequestState.CONFIRMED,
                    RequestState.PROVISIONED,
                ),
            )
        if row.state == RequestState.LOCKED:
            with store.read() as conn:
                confirmation.account_lock(conn, row.account, actor.now, request_id=request_id)
            raise idg_error("IDG-K05", request_id=request_id)
        if row.state in (RequestState.CONFIRMED, RequestState.PROVISIONED):
            # The code was used: say so (IDG-K04) rather than "wrong state".
            with store.begin() as conn:
                used = confirmation.check(
                    conn,
                    settings.identity,
                    pepper,
                    request_id=request_id,
                    account=row.account,
                    code=code.reveal(),
                    now=actor.now,
                )
            raise used.error or idg_error("IDG-K04", request_id=request_id)
        with store.begin() as conn:
            confirmation.account_lock(conn, row.account, actor.now, request_id=request_id)
            result = confirmation.check(
                conn,
                settings.identity,
                pepper,
                request_id=request_id,
                account=row.account,
                code=code.reveal(),
                now=actor.now,
            )
            if result.locked_now:
                _transition(
                    conn,
                    _row(conn, request_id),
                    RequestState.LOCKED,
                    actor,
                    "request.lock",
                    reason="IDG-K05",
                )
            if result.error is None:
                _transition(
                    conn, _row(conn, request_id), RequestState.CONFIRMED, actor, "request.confirm"
                )
                if row.spki_sha256:
                    conn.execute(
                        insert(key_bindings).values(
                            spki_sha256=row.spki_sha256,
                            address=row.address,
                            request_id=request_id,
                            created_at=actor.now,
                        )
                    )
        if result.error is not None:
            warnings = (
                request_notices.announce(settings, send, [_notice(row, "locked", "IDG-K05")])
                if result.locked_now
                else []
            )
            raise _warn(result.error, warnings)
        return _provision(store, settings, row, send=send, actor=actor)

    try:
        return _guard(store, settings, request_id, actor, "request.confirm", step, send)  # type: ignore[no-any-return]
    except IntegrityError:
        warnings = _reject(store, settings, request_id, "IDG-C14", actor, send)
        raise _warn(idg_error("IDG-C14", request_id=request_id), warnings) from None


def _provision(
    store: Store, settings: SiteConfig, row: Any, *, send: Sender, actor: Actor
) -> Provisioned:

    parsed = parse_address(row.address)
    new = accounts.prepare_password(settings.passwords, parsed)
    try:
        mailbox = accounts.add_mailbox(
            store,
            row.address,
            new,
            actor=actor,
            display_name=row.display_name,
            quota_bytes=_quota(settings),
            temporary_hours=settings.passwords.temp_password_hours,
            backend=new_home(store, parsed.domain, None, settings.cluster),
        )
    except MailprovError as exc:
        with store.begin() as conn:
            conn.execute(delete(key_bindings).where(key_bindings.c.request_id == row.id))
            _transition(
                conn,
                _row(conn, row.id),
                RequestState.REJECTED,
                actor,
                "request.reject",
                reason=exc.code[:16],
                details={"error": exc.code},
            )
        _warn(exc, request_notices.announce(settings, send, [_notice(row, "rejected", exc.code)]))
        raise
    with store.begin() as conn:
        evidence = {
            k: v
            for k, v in (
                ("iss", row.evidence_iss),
                ("sub", row.evidence_sub),
                ("jti", row.evidence_jti),
                ("spki_sha256", row.spki_sha256),
            )
            if v
        }
        _transition(
            conn,
            _row(conn, row.id),
            RequestState.PROVISIONED,
            actor,
            "request.provision",
            details={"address": row.address, **evidence},
        )
        # The owner's side: the gate account proven here can reset the password later, and
        # the request's contact (it received the code) is the mailbox's first recovery contact.
        contacts.bind_provisioned(
            conn, row.address, identity=row.account, contact=row.recovery, now=actor.now
        )
    warnings = request_notices.announce(settings, send, [_notice(row, "provisioned")])
    assert new.generated is not None  # noqa: S101  (prepare_password generated it)
    request = replace(get_request(store, row.id), warnings=tuple(warnings))
    return Provisioned(request, mailbox, new.generated, not warnings)


def _quota(settings: SiteConfig) -> int:
    return parse_size(settings.accounts.default_quota)


def cancel(
    store: Store, settings: SiteConfig, request_id: str, *, send: Sender, actor: Actor
) -> Request:
    """Cancel a request that is not finished; the recovery contact is told."""

    def step() -> Request:
        with store.begin() as conn:
            row = _live_row(
                conn,
                request_id,
                actor.now,
                (RequestState.OPEN, RequestState.IDENTITY_VERIFIED, RequestState.LOCKED),
            )
            _transition(
                conn, row, RequestState.CANCELLED, actor, "request.cancel", reason="cancelled"
            )
        warnings = request_notices.announce(settings, send, [_notice(row, "cancelled")])
        return replace(get_request(store, request_id), warnings=tuple(warnings))

    return _guard(store, settings, request_id, actor, "request.cancel", step, send)  # type: ignore[no-any-return]


def renew_challenge(
    store: Store, settings: SiteConfig, request_id: str, *, send: Sender, actor: Actor
) -> Request:
    """A fresh certificate challenge for an open request (the old one stops working)."""

    def step() -> Request:
        with store.begin() as conn:
            _live_row(conn, request_id, actor.now, (RequestState.OPEN,))
            conn.execute(
                update(requests)
                .where(requests.c.id == request_id)
                .values(
                    challenge=new_challenge(request_id),
                    challenge_expires_at=actor.now + settings.identity.challenge_ttl_seconds,
                    updated_at=actor.now,
                )
            )
            audit.append(
                conn, at=actor.now, actor=actor.name, action="request.challenge", target=request_id
            )
        return get_request(store, request_id)

    return _guard(store, settings, request_id, actor, "request.challenge", step, send)  # type: ignore[no-any-return]


def unlock(store: Store, request_id: str, *, actor: Actor) -> Request:
    """Administrator: clear the account lock of the request's requester (the §5.4 cap)."""
    with store.begin() as conn:
        row = _row(conn, request_id)
        if not row.account:
            raise WrongRequestState(
                f"request {request_id} has no verified requester yet", request_id=request_id
            )
        confirmation.reset_account(conn, row.account, actor.now)
        audit.append(
            conn, at=actor.now, actor=actor.name, action="request.unlock-account", target=request_id
        )
    return get_request(store, request_id)


def get_request(store: Store, raw_id: str) -> Request:
    """One request."""
    with store.read() as conn:
        return _request(_row(conn, normalise_id(raw_id)))


def list_requests(store: Store, *, state: RequestState | None = None) -> list[Request]:
    """Requests, newest first, optionally in one state."""
    query = select(requests).order_by(requests.c.created_at.desc(), requests.c.id)
    if state:
        query = query.where(requests.c.state == state)
    with store.read() as conn:
        return [_request(r) for r in conn.execute(query)]


def expire_requests(
    store: Store, settings: SiteConfig, *, now: int, send: Sender, actor_name: str = "sweep"
) -> list[Request]:
    """Sweep step: expire unfinished requests past their time (each recovery contact is
    told); purge old replay rows. Returns the expired requests, with notice warnings.
    """
    actor = accounts.Actor(actor_name, now)
    with store.begin() as conn:
        rows = conn.execute(
            select(requests).where(requests.c.state.in_(LIVE), requests.c.expires_at < now)
        ).all()
        for row in rows:
            _transition(conn, row, RequestState.EXPIRED, actor, "request.expire", reason="expired")
        conn.execute(delete(seen_token).where(seen_token.c.exp < now - LEEWAY))
    done = []
    for row in rows:
        warnings = request_notices.announce(settings, send, [_notice(row, "expired")])
        done.append(replace(get_request(store, row.id), warnings=tuple(warnings)))
    return done
