"""Operations: the requester's way to a new mailbox, over HTTP.

Anyone may check an address and open a request; opening one answers its number
and a secret **handle**, shown once. Every later call about the request names the
number in the path and gives the handle in the ``X-Request-Handle`` header — never
in the URL, where proxies and logs would keep it. A wrong handle and an unknown
number get the same 404 (``request-unknown``), so numbers cannot be probed.

The steps are the CLI's (``mailprov request …``) on the same services: prove who
you are (an identity token, or a certificate and a signature over the request's
challenge, made on your own machine — the private key never comes here), confirm
with the code sent to the recovery contact, and receive the login and the
temporary password once. Every state change is also mailed to the recovery
contact; a notice that could not be sent is listed in the answer's ``warnings``.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from mailprov import errors as e
from mailprov.model import RequestKind, RequestState, Secret, iso
from mailprov.services import provisioning, requester
from mailprov.services.accounts import Actor
from mailprov.services.provisioning import Request
from mailprov.services.request_notices import reason_text, sender_for
from mailprov.web.api import API, HANDLE_HEADER, Call

TAG = "requests"
BASE = "/api/v1/requests"
ITEM = BASE + "/{number}"

ADDRESS = {"type": "string", "minLength": 1, "maxLength": 254, "description": "name@domain"}
SECRET_TEXT = {"writeOnly": True}

_GATE_STATE = (e.RequestExpired, e.WrongRequestState, e.RequestUnknown)
_SENDING = (e.RateLimited, e.ConfirmationLocked, e.RecoveryUnreachable, e.TemporaryFailure)
_ADDRESS = (e.InvalidAddress, e.UnknownDomain, e.InvalidValue)

AVAILABILITY = API.schema(
    "AddressAvailability",
    {
        "type": "object",
        "required": ["address", "available", "suggestions"],
        "properties": {
            "address": {"type": "string", "description": "The address as it would be created."},
            "available": {"type": "boolean"},
            "suggestions": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Free alternatives when it is taken (3 or more).",
            },
        },
    },
)

_TIME = {"type": ["string", "null"], "description": "ISO 8601 UTC"}
REQUEST = API.schema(
    "ProvisioningRequest",
    {
        "type": "object",
        "required": ["id", "address", "kind", "state", "created_at", "expires_at", "next"],
        "properties": {
            "id": {"type": "string", "description": "The request's number (not a secret)."},
            "address": {"type": "string"},
            "kind": {"enum": [k.value for k in RequestKind]},
            "state": {"enum": [s.value for s in RequestState]},
            "recovery": {"type": "string", "description": "Where codes and notices go."},
            "name": {"type": "string"},
            "nonce": {
                "type": ["string", "null"],
                "description": "While open: the nonce an identity token must carry.",
            },
            "challenge": {
                "type": ["string", "null"],
                "description": "While open: the text to sign with the certificate's key.",
            },
            "challenge_expires_at": _TIME,
            "reason": {
                "type": ["object", "null"],
                "description": "Why it ended (an IDG code of docs/identity-gate.md, or a word).",
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            },
            "created_at": _TIME,
            "updated_at": _TIME,
            "expires_at": _TIME,
            "next": {
                "type": "object",
                "required": ["action", "text"],
                "properties": {
                    "action": {
                        "enum": [
                            "prove-identity",
                            "confirm",
                            "resend",
                            "wait",
                            "sign-in",
                            "open-new",
                        ]
                    },
                    "text": {"type": "string"},
                },
            },
            "history": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["at", "event"],
                    "properties": {
                        "at": {"type": "string"},
                        "event": {"type": "string"},
                        "state": {"type": "string"},
                        "reason": {"type": "string"},
                    },
                },
            },
        },
    },
)

WARNINGS = {
    "type": "array",
    "items": {"type": "string"},
    "description": "Notices to the recovery contact that could not be sent (the change stands).",
}


def _answer(schema: dict[str, Any] | None = None, *required: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["request", "warnings", *required],
        "properties": {"request": REQUEST, "warnings": WARNINGS, **(schema or {})},
    }


def _actor(call: Call) -> Actor:
    return Actor(f"requester:{call.client}"[:128], call.now)


def _next(req: Request) -> dict[str, str]:
    here = f"{BASE}/{req.id}"
    state = req.state
    if state == RequestState.OPEN:
        return {
            "action": "prove-identity",
            "text": f"prove who you are: POST {here}/identity/token with an identity token "
            f"issued for this request's nonce; or POST {here}/challenge, sign the challenge "
            f"with your certificate's key, and POST {here}/identity/certificate",
        }
    if state == RequestState.IDENTITY_VERIFIED:
        return {
            "action": "confirm",
            "text": f"type the code sent to {req.recovery}: POST {here}/confirm "
            f"(no code? POST {here}/resend)",
        }
    if state == RequestState.LOCKED:
        return {
            "action": "resend",
            "text": f"too many wrong codes: ask for a new one with POST {here}/resend",
        }
    if state == RequestState.CONFIRMED:
        return {"action": "wait", "text": "the mailbox is being created; look again shortly"}
    if state == RequestState.PROVISIONED:
        return {
            "action": "sign-in",
            "text": "sign in (POST /api/v1/session) with your login and the temporary "
            "password you were shown, then set your own password",
        }
    return {
        "action": "open-new",
        "text": f"this request is {state}; open a new one (POST {BASE}) "
        "if you still want a mailbox",
    }


def _view(req: Request, history: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The requester's view: no evidence, no actor; the nonce and challenge only while open."""
    data = req.to_json()
    view = {
        key: data[key]
        for key in (
            "id",
            "address",
            "kind",
            "state",
            "recovery",
            "name",
            "challenge_expires_at",
            "created_at",
            "updated_at",
            "expires_at",
        )
    }
    view["nonce"] = req.nonce or None
    view["challenge"] = req.challenge
    view["reason"] = (
        {"code": req.reason, "message": reason_text(req.reason)} if req.reason else None
    )
    view["next"] = _next(req)
    if history is not None:
        view["history"] = history
    return view


def _done(req: Request, **extra: Any) -> dict[str, Any]:
    return {"request": _view(req), "warnings": list(req.warnings), **extra}


def _number(call: Call) -> str:
    """The request the path names, if the handle header opens it."""
    return requester.find(
        call.services.store, call.services.pepper, call.path["number"], call.handle
    )


# -- the address ------------------------------------------------------------------------


def _check(call: Call, raw: str) -> dict[str, Any]:
    return requester.check_address(call.services.store, raw).to_json()


@API.operation(
    "GET",
    "/api/v1/addresses/check",
    summary="Is this address free? (taken: free suggestions)",
    tag=TAG,
    stages=None,
    query={"address": ADDRESS},
    answer=AVAILABILITY,
    errors=_ADDRESS,
)
def check_address(call: Call) -> dict[str, Any]:
    """Check an address as opening a request would: its rules, the domain, and whether a
    mailbox, alias or pending request holds it. Taken: at least three free alternatives.
    """
    raw = call.query.get("address")
    if raw is None:
        raise e.MalformedRequest(
            "the query parameter 'address' is missing", hint="?address=name@domain"
        )
    return _check(call, raw)


@API.operation(
    "POST",
    "/api/v1/addresses/check",
    summary="Is this address free? (the same, with the address in the body)",
    tag=TAG,
    stages=None,
    body={
        "type": "object",
        "required": ["address"],
        "additionalProperties": False,
        "properties": {"address": ADDRESS},
    },
    answer=AVAILABILITY,
    errors=_ADDRESS,
)
def check_address_body(call: Call) -> dict[str, Any]:
    """The address check, for clients that keep even addresses out of URLs."""
    return _check(call, call.body["address"])


# -- opening and following a request ------------------------------------------------------


@API.operation(
    "POST",
    BASE,
    summary="Open a request for a new mailbox; answers its number and secret handle",
    tag=TAG,
    stages=None,
    body={
        "type": "object",
        "required": ["address", "kind", "recovery", "accept_terms"],
        "additionalProperties": False,
        "properties": {
            "address": ADDRESS,
            "kind": {"enum": [k.value for k in RequestKind]},
            "recovery": {
                "type": "string",
                "minLength": 1,
                "maxLength": 254,
                "description": "Where codes and notices go: a mail address you can read, or a "
                "phone number (+79161234567) where the site has an SMS gateway ([notify] hook).",
            },
            "name": {
                "type": "string",
                "maxLength": 256,
                "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$",
                "description": "Your name; if given, it must match the verified identity "
                "(no control characters).",
            },
            "accept_terms": {"type": "boolean"},
        },
    },
    answer=_answer(
        {
            "handle": {
                "type": "string",
                "description": f"Shown once: send it as {HANDLE_HEADER} with every later call.",
            }
        },
        "handle",
    ),
    status=201,
    errors=(
        *_ADDRESS,
        e.TermsNotAccepted,
        e.AddressTaken,
        e.RecoveryInvalid,
        e.DomainNotVerified,
        e.DomainHandleRequired,
        e.ClientRateLimited,
    ),
    domain_handle="optional",
)
def open_request(call: Call) -> dict[str, Any]:
    """Open a request. Keep the handle: it is shown only now, and without it the request
    cannot be followed (the number alone opens nothing). The recovery contact is told.
    At a domain whose ownership was proven through this site, the proof's domain handle
    (X-Domain-Handle) is needed too (``domain-handle-required``, 403, without it).
    """
    services, body = call.services, call.body
    req, handle = requester.open_request(
        services.store,
        services.settings,
        services.pepper,
        send=sender_for(services.settings),
        actor=_actor(call),
        address=body["address"],
        kind=body["kind"],
        recovery=body["recovery"],
        name=body.get("name", ""),
        accept_terms=body["accept_terms"],
        domain_handle=call.domain_handle,
    )
    call.headers["Location"] = f"{BASE}/{req.id}"
    return _done(req, handle=handle.reveal())


@API.operation(
    "GET",
    ITEM,
    summary="A request's state, times, reason, next step and history",
    tag=TAG,
    stages=None,
    handle=True,
    answer=_answer(),
    errors=_GATE_STATE,
)
def show_request(call: Call) -> dict[str, Any]:
    """The request as its requester sees it, with what to do next and what happened so far.

    A request past its time is marked expired first (and its recovery contact told).
    """
    services = call.services
    status = requester.status(
        services.store,
        services.settings,
        _number(call),
        send=sender_for(services.settings),
        actor=_actor(call),
    )
    req = status.request
    return {"request": _view(req, status.history), "warnings": list(req.warnings)}


# -- proving who you are ------------------------------------------------------------------

_PROOF = (*_GATE_STATE, *_SENDING, e.NameMismatch, e.ConfigInvalid)


@API.operation(
    "POST",
    ITEM + "/identity/token",
    summary="Prove your identity with a verified-identity token",
    tag=TAG,
    stages=None,
    handle=True,
    body={
        "type": "object",
        "required": ["token"],
        "additionalProperties": False,
        "properties": {
            "token": {"type": "string", "maxLength": 16384, **SECRET_TEXT},
        },
    },
    answer=_answer(),
    errors=(
        *_PROOF,
        e.TokenRejected,
        e.TokenTimeInvalid,
        e.TokenWrongRequest,
        e.TokenReplayed,
        e.IdentityNotVerified,
        e.TrustInvalid,
    ),
)
def prove_with_token(call: Call) -> dict[str, Any]:
    """Checks (A) of docs/identity-gate.md; on success a code goes to the recovery contact.

    The token must carry this request's nonce and is good once.
    """
    services = call.services
    req = provisioning.verify_with_token(
        services.store,
        services.settings,
        _number(call),
        Secret(call.body["token"]),
        pepper=services.pepper,
        send=sender_for(services.settings),
        actor=_actor(call),
    )
    return _done(req)


@API.operation(
    "POST",
    ITEM + "/challenge",
    summary="A fresh challenge to sign with your certificate's key",
    tag=TAG,
    stages=None,
    handle=True,
    answer=_answer(),
    errors=_GATE_STATE,
)
def new_challenge(call: Call) -> dict[str, Any]:
    """A new challenge for an open request (valid 5 minutes, single use; the old one stops
    working). Sign it on your own machine, e.g. 'mailprov identity sign-challenge'.
    """
    services = call.services
    req = provisioning.renew_challenge(
        services.store,
        services.settings,
        _number(call),
        send=sender_for(services.settings),
        actor=_actor(call),
    )
    return _done(req)


def _decode(text: str) -> bytes:
    """PEM text as it is, anything else as base64 (DER); what does not decode is empty."""
    if "-----BEGIN" in text:
        return text.encode("utf-8", "replace")
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        return b""


@API.operation(
    "POST",
    ITEM + "/identity/certificate",
    summary="Prove your identity with a certificate and a signature over the challenge",
    tag=TAG,
    stages=None,
    handle=True,
    body={
        "type": "object",
        "required": ["certificate", "signature"],
        "additionalProperties": False,
        "properties": {
            "certificate": {
                "type": "string",
                "minLength": 1,
                "maxLength": 96 * 1024,
                "description": "The certificate (and its chain) as PEM, or DER in base64. "
                "Not a .p12: the private key stays on your machine.",
            },
            "signature": {
                "type": "string",
                "maxLength": 4096,
                "description": "Base64 of the signature over the request's current challenge.",
            },
        },
    },
    answer=_answer(),
    errors=(
        *_PROOF,
        e.CertificateUnreadable,
        e.CertificateAlgorithm,
        e.CertificateOutOfDate,
        e.CertificateUntrusted,
        e.RevocationUnknown,
        e.CertificateRevoked,
        e.PossessionNotProven,
        e.KeyAlreadyBound,
    ),
)
def prove_with_certificate(call: Call) -> dict[str, Any]:
    """Checks (B) of docs/identity-gate.md; on success a code goes to the recovery contact."""
    services = call.services
    req = provisioning.verify_with_certificate(
        services.store,
        services.settings,
        _number(call),
        _decode(call.body["certificate"]),
        _decode(call.body["signature"]),
        pepper=services.pepper,
        send=sender_for(services.settings),
        actor=_actor(call),
    )
    return _done(req)


# -- the code ---------------------------------------------------------------------------

CREDENTIALS = {
    "type": "object",
    "required": ["login", "temporary_password", "expires_at"],
    "description": "Shown once, in this answer only.",
    "properties": {
        "login": {"type": "string"},
        "temporary_password": {"type": "string"},
        "expires_at": {
            "type": ["string", "null"],
            "description": "Set your own password before this (ISO 8601 UTC).",
        },
    },
}


@API.operation(
    "POST",
    ITEM + "/confirm",
    summary="Confirm with the code: creates the mailbox; answers the credentials once",
    tag=TAG,
    stages=None,
    handle=True,
    body={
        "type": "object",
        "required": ["code"],
        "additionalProperties": False,
        "properties": {"code": {"type": "string", "maxLength": 64, **SECRET_TEXT}},
    },
    answer=_answer({"credentials": CREDENTIALS}, "credentials"),
    errors=(
        *_GATE_STATE,
        e.CodeInvalid,
        e.CodeExpired,
        e.CodeUsed,
        e.RequestLocked,
        e.ConfirmationLocked,
        e.KeyAlreadyBound,
        e.AddressTaken,
        e.AlreadyExists,
        e.InvalidValue,
    ),
)
def confirm_request(call: Call) -> dict[str, Any]:
    """Check the code; on success the mailbox exists and this answer — only this one —
    carries its login and temporary password. Five wrong codes lock the request.
    """
    services = call.services
    done = provisioning.confirm(
        services.store,
        services.settings,
        _number(call),
        Secret(call.body["code"]),
        pepper=services.pepper,
        send=sender_for(services.settings),
        actor=_actor(call),
    )
    credentials = {
        "login": done.mailbox.address,
        "temporary_password": done.password.reveal(),
        "expires_at": iso(done.mailbox.temp_password_expires_at),
    }
    return _done(done.request, credentials=credentials)


@API.operation(
    "POST",
    ITEM + "/resend",
    summary="Send a new code (also unlocks a locked request)",
    tag=TAG,
    stages=None,
    handle=True,
    answer=_answer(),
    errors=(*_GATE_STATE, *_SENDING),
)
def resend_code(call: Call) -> dict[str, Any]:
    """A new code to the recovery contact: at least a minute apart, five an hour."""
    services = call.services
    req = provisioning.resend(
        services.store,
        services.settings,
        _number(call),
        pepper=services.pepper,
        send=sender_for(services.settings),
        actor=_actor(call),
    )
    return _done(req)


@API.operation(
    "POST",
    ITEM + "/cancel",
    summary="Cancel an unfinished request",
    tag=TAG,
    stages=None,
    handle=True,
    answer=_answer(),
    errors=_GATE_STATE,
)
def cancel_request(call: Call) -> dict[str, Any]:
    """Cancel the request; nothing is created, and the recovery contact is told."""
    services = call.services
    req = provisioning.cancel(
        services.store,
        services.settings,
        _number(call),
        send=sender_for(services.settings),
        actor=_actor(call),
    )
    return _done(req)
