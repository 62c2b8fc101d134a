"""Operations: the owner's recovery contacts, and password reset without the old password.

Contacts (signed in): list, add (a code is sent to the new contact; it counts only
once that code comes back), confirm, remove (not the last verified one).

Reset (no session): start by ``contact`` or ``identity`` — always 202 and the same
answer whether the address is a mailbox here or not; for ``identity``, send the
token the identity provider issued with the answer's nonce; then the code sent to
the verified contacts gives a reset grant, and the grant sets the new password.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from mailprov.errors import (
    AlreadyExists,
    CodeExpired,
    CodeInvalid,
    CodeUsed,
    ContactNotPending,
    IdentityGateError,
    IdentityMismatch,
    InvalidAddress,
    InvalidValue,
    LastRecoveryContact,
    NotFound,
    PasswordPolicy,
    RateLimited,
    RecoveryInvalid,
    RecoveryUnreachable,
    RequestLocked,
    ResetEnded,
    ResetRouteDisabled,
    TemporaryFailure,
    TokenReplayed,
)
from mailprov.model import Secret
from mailprov.services import contacts, reset
from mailprov.web.api import API, Call
from mailprov.web.session import ADDRESS, PASSWORD

if TYPE_CHECKING:
    from mailprov.settings import SiteConfig

CONTACT_TEXT = {
    "type": "string",
    "minLength": 1,
    "maxLength": 254,
    "description": "A mail address, or a phone number in international form (+79161234567) "
    "where the site has an SMS gateway",
}
CODE = {"type": "string", "minLength": 1, "maxLength": 32, "writeOnly": True}
CODE_ERRORS = (CodeInvalid, CodeExpired, CodeUsed, RequestLocked)

CONTACT = API.schema(
    "RecoveryContact",
    {
        "type": "object",
        "required": ["contact", "kind", "verified", "verified_at", "created_at"],
        "properties": {
            "contact": {"type": "string"},
            "kind": {"enum": ["email", "phone"]},
            "verified": {
                "type": "boolean",
                "description": "Only verified contacts get reset codes and security notices.",
            },
            "verified_at": {"type": ["string", "null"]},
            "created_at": {"type": "string"},
        },
    },
)


@API.operation(
    "GET",
    "/api/v1/account/contacts",
    summary="The mailbox's recovery contacts",
    tag="recovery",
    answer={
        "type": "object",
        "required": ["contacts"],
        "properties": {"contacts": {"type": "array", "items": CONTACT}},
    },
)
def list_contacts(call: Call) -> dict[str, Any]:
    """Every recovery contact, verified or waiting for its code, oldest first."""
    found = contacts.list_contacts(call.services.store, call.owner.address)
    return {"contacts": [c.to_json() for c in found]}


@API.operation(
    "POST",
    "/api/v1/account/contacts",
    summary="Add a recovery contact (a code is sent to it)",
    tag="recovery",
    body={
        "type": "object",
        "required": ["contact"],
        "additionalProperties": False,
        "properties": {"contact": CONTACT_TEXT},
    },
    answer={
        "type": "object",
        "required": ["contact", "code_expires_at"],
        "properties": {"contact": CONTACT, "code_expires_at": {"type": "integer"}},
    },
    status=202,
    errors=(
        RecoveryInvalid,
        AlreadyExists,
        InvalidValue,
        RateLimited,
        RecoveryUnreachable,
        TemporaryFailure,
    ),
)
def add_contact(call: Call) -> dict[str, Any]:
    """Add a contact; it is verified once the code sent to it is confirmed.

    Adding a contact that waits for its code sends a new code. Phone numbers need the
    site's SMS gateway.
    """
    services = call.services
    added = contacts.add_contact(
        services.store,
        services.settings,
        services.pepper,
        call.owner.address,
        call.body["contact"],
        now=call.now,
    )
    return {"contact": added.contact.to_json(), "code_expires_at": added.code_expires_at}


@API.operation(
    "POST",
    "/api/v1/account/contacts/confirm",
    summary="Confirm a new recovery contact with the code sent to it",
    tag="recovery",
    body={
        "type": "object",
        "required": ["contact", "code"],
        "additionalProperties": False,
        "properties": {"contact": CONTACT_TEXT, "code": CODE},
    },
    answer={"type": "object", "required": ["contact"], "properties": {"contact": CONTACT}},
    errors=(ContactNotPending, RecoveryInvalid, *CODE_ERRORS),
)
def confirm_contact(call: Call) -> dict[str, Any]:
    """The contact becomes verified; every verified contact is told (a security event)."""
    services = call.services
    done = contacts.confirm_contact(
        services.store,
        services.settings,
        services.pepper,
        call.owner.address,
        call.body["contact"],
        call.body["code"],
        now=call.now,
    )
    return {"contact": done.to_json()}


@API.operation(
    "DELETE",
    "/api/v1/account/contacts/{contact}",
    summary="Remove a recovery contact",
    tag="recovery",
    answer={"type": "object", "required": ["removed"], "properties": {"removed": CONTACT}},
    errors=(NotFound, LastRecoveryContact, RecoveryInvalid),
)
def remove_contact(call: Call) -> dict[str, Any]:
    """Remove a contact; the last verified one stays (add another first).

    Removing a verified contact is a security event, told to it and to the others.
    """
    services = call.services
    done = contacts.remove_contact(
        services.store, services.settings, call.owner.address, call.path["contact"], now=call.now
    )
    assert done is not None  # noqa: S101  (None only with missing_ok)
    return {"removed": done.contact.to_json()}


RESET_STARTED = API.schema(
    "ResetStarted",
    {
        "type": "object",
        "required": ["message", "via", "expires_at"],
        "properties": {
            "message": {"type": "string"},
            "via": {"enum": [reset.CONTACT, reset.IDENTITY]},
            "expires_at": {"type": "integer", "description": "Unix seconds."},
            "nonce": {
                "type": "string",
                "description": "Identity route: the nonce the identity token must carry.",
            },
        },
    },
)


def started_answer(found: reset.ResetStarted) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "message": found.message,
        "via": found.via,
        "expires_at": found.expires_at,
    }
    if found.nonce is not None:
        answer["nonce"] = found.nonce
    return answer


@API.operation(
    "POST",
    "/api/v1/password-reset",
    summary="Start a password reset (the same answer whether the address exists or not)",
    tag="reset",
    stages=None,
    body={
        "type": "object",
        "required": ["address", "via"],
        "additionalProperties": False,
        "properties": {"address": ADDRESS, "via": {"enum": [reset.CONTACT, reset.IDENTITY]}},
    },
    answer=RESET_STARTED,
    status=202,
    errors=(ResetRouteDisabled, InvalidAddress, RateLimited),
)
def start_reset(call: Call) -> dict[str, Any]:
    """By 'contact': a code goes to the mailbox's verified recovery contacts.

    By 'identity': the answer carries a nonce for the identity token (next step).
    The answer is the same for an address that is not a mailbox here.
    """
    services = call.services
    found = reset.start(
        services.store,
        services.settings,
        services.pepper,
        call.body["address"],
        via=call.body["via"],
        client=call.client,
        now=call.now,
    )
    # Sent after the answer has gone out, from a thread started in every case: neither the
    # answer's timing nor the work around it tells whether a code was sent.
    threading.Thread(
        target=_deliver_later, args=(services.settings, found), name="reset-code", daemon=True
    ).start()
    return started_answer(found)


#: The reset code's delivery waits this long, so it never competes with writing the answer.
DELIVERY_DELAY = 0.25


def _deliver_later(settings: SiteConfig, found: reset.ResetStarted) -> None:
    time.sleep(DELIVERY_DELAY)
    reset.deliver(settings, found)


@API.operation(
    "POST",
    "/api/v1/password-reset/identity",
    summary="Prove the mailbox's identity again (reset by identity); a code follows",
    tag="reset",
    stages=None,
    body={
        "type": "object",
        "required": ["address", "token"],
        "additionalProperties": False,
        "properties": {
            "address": ADDRESS,
            "token": {"type": "string", "minLength": 1, "maxLength": 8192, "writeOnly": True},
        },
    },
    answer=RESET_STARTED,
    status=202,
    errors=(
        ResetRouteDisabled,
        InvalidAddress,
        ResetEnded,
        IdentityGateError,
        TokenReplayed,
        IdentityMismatch,
        RecoveryUnreachable,
    ),
)
def verify_reset_identity(call: Call) -> dict[str, Any]:
    """The token is checked like a request's (signature, issuer, audience, times, nonce,
    assurance, replay), and its issuer and subject must be those bound to the mailbox at
    provisioning. Then a code goes to the verified recovery contacts.
    """
    services = call.services
    found = reset.verify_identity(
        services.store,
        services.settings,
        services.pepper,
        call.body["address"],
        Secret(call.body["token"]),
        now=call.now,
    )
    send_codes(services.settings, found)
    return started_answer(found)


def send_codes(settings: SiteConfig, found: reset.ResetStarted) -> None:
    """Send the code of a reset whose identity was proven, now (the identity is no secret
    any more: the answer may wait for the mail server).

    Raises:
        RecoveryUnreachable: no recovery contact got it.
    """
    if found.messages and reset.deliver(settings, found) == 0:
        raise RecoveryUnreachable(
            "the code could not be sent to any recovery contact",
            hint="retry later; start a new reset if this one expires",
        )


@API.operation(
    "POST",
    "/api/v1/password-reset/confirm",
    summary="Give the reset code; the answer is a grant to set the new password",
    tag="reset",
    stages=None,
    body={
        "type": "object",
        "required": ["address", "code"],
        "additionalProperties": False,
        "properties": {"address": ADDRESS, "code": CODE},
    },
    answer=API.schema(
        "ResetGrant",
        {
            "type": "object",
            "required": ["grant", "expires_at"],
            "properties": {
                "grant": {
                    "type": "string",
                    "description": "Spend it on PUT /api/v1/password-reset/password.",
                },
                "expires_at": {"type": "integer", "description": "Unix seconds."},
            },
        },
    ),
    errors=(InvalidAddress, *CODE_ERRORS),
)
def confirm_reset(call: Call) -> dict[str, Any]:
    """A right code gives a one-time grant; wrong codes count (5 per code)."""
    services = call.services
    grant = reset.confirm(
        services.store,
        services.settings,
        services.pepper,
        call.body["address"],
        Secret(call.body["code"]),
        now=call.now,
    )
    return {"grant": grant.token.reveal(), "expires_at": grant.expires_at}


@API.operation(
    "PUT",
    "/api/v1/password-reset/password",
    summary="Set the new password with a reset grant",
    tag="reset",
    stages=None,
    body={
        "type": "object",
        "required": ["grant", "new"],
        "additionalProperties": False,
        "properties": {
            "grant": {"type": "string", "minLength": 1, "maxLength": 128, "writeOnly": True},
            "new": PASSWORD,
        },
    },
    answer={
        "type": "object",
        "required": ["address", "sessions_ended"],
        "properties": {"address": {"type": "string"}, "sessions_ended": {"type": "integer"}},
    },
    errors=(ResetEnded, PasswordPolicy),
)
def reset_password(call: Call) -> dict[str, Any]:
    """The new password (policy-checked) replaces the old; every session ends, sign-in
    failures and lockout are cleared, and the recovery contacts are told.
    """
    services = call.services
    done = reset.set_password(
        services.store,
        services.settings,
        services.pepper,
        Secret(call.body["grant"]),
        Secret(call.body["new"]),
        now=call.now,
    )
    return {"address": done.address, "sessions_ended": done.sessions_ended}
