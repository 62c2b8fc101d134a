"""Operations: two-factor authentication (TOTP, recovery codes), its step of sign-in,
and app passwords for mail clients.

Secrets leave the server once each: the TOTP secret (and its URI and QR code) when a
set-up starts, the recovery codes when it is confirmed or renewed, an app password
when it is created. Every answer says ``Cache-Control: no-store``.
"""

from __future__ import annotations

from typing import Any

from mailprov.errors import (
    AlreadyExists,
    InvalidValue,
    NotFound,
    SignInFailed,
    TwoFactorCodeExpired,
    TwoFactorCodeInvalid,
    TwoFactorCodeReused,
    TwoFactorLocked,
    TwoFactorState,
)
from mailprov.model import Secret, SessionStage
from mailprov.services import app_passwords, twofactor
from mailprov.web.api import API, Call
from mailprov.web.session import PASSWORD, SESSION, _session_answer

CODE = {
    "type": "string",
    "minLength": 1,
    "maxLength": 64,
    "writeOnly": True,
    "description": "The 6-digit code of the authenticator app (or, where said, a recovery code).",
}
CODE_ERRORS = (TwoFactorCodeInvalid, TwoFactorCodeExpired, TwoFactorCodeReused, TwoFactorLocked)

PROOF = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "maxProperties": 1,
    "description": "Either a current code (or a recovery code) or the password.",
    "properties": {"code": CODE, "password": PASSWORD},
}

RECOVERY_CODES = {
    "type": "array",
    "items": {"type": "string"},
    "description": "Ten single-use recovery codes, shown only now: keep them safe.",
}

STATUS = API.schema(
    "TwoFactorStatus",
    {
        "type": "object",
        "required": ["enabled", "pending", "recovery_codes_left", "app_passwords"],
        "properties": {
            "enabled": {"type": "boolean"},
            "enabled_at": {"type": ["integer", "null"]},
            "pending": {"type": "boolean", "description": "A set-up started, not confirmed."},
            "recovery_codes_left": {"type": "integer"},
            "locked_until": {
                "type": ["integer", "null"],
                "description": "Too many wrong codes: the second step is locked until then.",
            },
            "app_passwords": {"type": "integer"},
        },
    },
)

APP_PASSWORD = API.schema(
    "AppPassword",
    {
        "type": "object",
        "required": ["id", "label", "created_at", "last_used_at"],
        "properties": {
            "id": {"type": "integer"},
            "label": {"type": "string"},
            "created_at": {"type": "integer"},
            "last_used_at": {
                "type": ["integer", "null"],
                "description": "Not recorded by this version: always null (Dovecot checks "
                "app passwords read-only; see the README).",
            },
            "password": {
                "type": "string",
                "description": "Only in the answer that created it: shown once, never again.",
            },
        },
    },
)


def _status(call: Call) -> dict[str, Any]:
    found = twofactor.status(call.services.store, call.owner.address, now=call.now).to_json()
    del found["address"]
    return found


@API.operation(
    "GET",
    "/api/v1/account/2fa",
    summary="Whether two-factor authentication is on",
    tag="two-factor",
    answer=STATUS,
)
def show_two_factor(call: Call) -> dict[str, Any]:
    """On, off or being set up; recovery codes left; a lock after wrong codes."""
    return _status(call)


@API.operation(
    "POST",
    "/api/v1/account/2fa",
    summary="Start turning two-factor authentication on (TOTP)",
    tag="two-factor",
    answer=API.schema(
        "TwoFactorSetup",
        {
            "type": "object",
            "required": ["secret", "otpauth_uri", "qr_svg"],
            "properties": {
                "secret": {"type": "string", "description": "Base32, for typing in by hand."},
                "otpauth_uri": {"type": "string"},
                "qr_svg": {"type": "string", "description": "The URI as a QR code (SVG)."},
            },
        },
    ),
    status=201,
    errors=(TwoFactorState,),
)
def start_two_factor(call: Call) -> dict[str, Any]:
    """A new secret for the authenticator app, not in force until a first code confirms it.

    The secret, its otpauth:// URI and the QR code are shown only in this answer. A set-up
    started earlier and never confirmed is replaced.
    """
    services = call.services
    made = twofactor.start_enrolment(
        services.store, services.settings, services.pepper, call.owner.address, now=call.now
    )
    return {
        "secret": made.secret.reveal(),
        "otpauth_uri": made.uri.reveal(),
        "qr_svg": made.qr_svg.reveal(),
    }


@API.operation(
    "POST",
    "/api/v1/account/2fa/confirm",
    summary="Confirm the set-up with a first code and the password; two-factor "
    "authentication is then on",
    tag="two-factor",
    body={
        "type": "object",
        "required": ["code", "password"],
        "additionalProperties": False,
        "properties": {"code": CODE, "password": PASSWORD},
    },
    answer={
        "type": "object",
        "required": ["enabled", "recovery_codes"],
        "properties": {"enabled": {"type": "boolean"}, "recovery_codes": RECOVERY_CODES},
    },
    errors=(TwoFactorState, SignInFailed, *CODE_ERRORS),
)
def confirm_two_factor(call: Call) -> dict[str, Any]:
    """Turn it on; the answer holds ten recovery codes, shown only now.

    The password is asked again so that a stolen session alone cannot put the mailbox
    behind someone else's authenticator.

    The owner's other sessions end, and IMAP, POP3 and SMTP stop taking the main
    password: mail clients need app passwords from now on.
    """
    services = call.services
    made = twofactor.confirm_enrolment(
        services.store,
        services.settings,
        services.pepper,
        call.owner,
        Secret(call.body["code"]),
        Secret(call.body["password"]),
        now=call.now,
    )
    return {"enabled": True, "recovery_codes": [c.reveal() for c in made]}


def _proof(call: Call) -> dict[str, Secret | None]:
    code, password = call.body.get("code"), call.body.get("password")
    return {
        "code": Secret(code) if code is not None else None,
        "password": Secret(password) if password is not None else None,
    }


@API.operation(
    "POST",
    "/api/v1/account/2fa/disable",
    summary="Turn two-factor authentication off (with a current code or the password)",
    tag="two-factor",
    body=PROOF,
    answer=STATUS,
    errors=(TwoFactorState, SignInFailed, *CODE_ERRORS),
)
def disable_two_factor(call: Call) -> dict[str, Any]:
    """Turn it off. App passwords stay until revoked; the main password opens mail again."""
    services = call.services
    twofactor.disable(
        services.store,
        services.settings,
        services.pepper,
        call.owner,
        **_proof(call),
        now=call.now,
    )
    return _status(call)


@API.operation(
    "POST",
    "/api/v1/account/2fa/recovery-codes",
    summary="Replace the recovery codes with ten new ones",
    tag="two-factor",
    body=PROOF,
    answer={
        "type": "object",
        "required": ["recovery_codes"],
        "properties": {"recovery_codes": RECOVERY_CODES},
    },
    errors=(TwoFactorState, SignInFailed, *CODE_ERRORS),
)
def renew_recovery_codes(call: Call) -> dict[str, Any]:
    """New recovery codes, shown only now; the old ones stop working."""
    services = call.services
    made = twofactor.renew_recovery_codes(
        services.store,
        services.settings,
        services.pepper,
        call.owner,
        **_proof(call),
        now=call.now,
    )
    return {"recovery_codes": [c.reveal() for c in made]}


@API.operation(
    "POST",
    "/api/v1/session/second-factor",
    summary="Give the second factor: a code of the authenticator app, or a recovery code",
    tag="session",
    stages=frozenset({SessionStage.SECOND_FACTOR}),
    body={
        "type": "object",
        "required": ["code"],
        "additionalProperties": False,
        "properties": {"code": CODE},
    },
    answer={
        "allOf": [
            SESSION,
            {
                "type": "object",
                "properties": {
                    "method": {"enum": [twofactor.TOTP, twofactor.RECOVERY_CODE]},
                    "recovery_codes_left": {"type": "integer"},
                },
            },
        ]
    },
    errors=(TwoFactorState, *CODE_ERRORS),
)
def second_factor(call: Call) -> dict[str, Any]:
    """Pass the session's second step; its stage becomes 'full' (or 'change-password').

    Six digits are taken as an authenticator code, anything else as a recovery code
    (each recovery code works once). After [web] two_factor_max_failures wrong codes
    the second step is locked for [web] two_factor_lock_minutes and this session ends.
    """
    assert call.token is not None  # noqa: S101 (narrows a type)
    services = call.services
    passed = twofactor.pass_second_factor(
        services.store,
        services.settings,
        services.pepper,
        call.owner,
        Secret(call.body["code"]),
        now=call.now,
    )
    answer = {**_session_answer(call, passed.session, call.token), "method": passed.method}
    if passed.recovery_codes_left is not None:
        answer["recovery_codes_left"] = passed.recovery_codes_left
    return answer


# -- app passwords ---------------------------------------------------------------------


@API.operation(
    "GET",
    "/api/v1/account/app-passwords",
    summary="The app passwords of the mailbox",
    tag="app-passwords",
    answer={
        "type": "object",
        "required": ["app_passwords"],
        "properties": {"app_passwords": {"type": "array", "items": APP_PASSWORD}},
    },
)
def list_app_passwords(call: Call) -> dict[str, Any]:
    """Each with its label, when it was made and when it was last used (never the password)."""
    found = app_passwords.list_for(call.services.store, call.owner.address)
    return {"app_passwords": [p.to_json() for p in found]}


@API.operation(
    "POST",
    "/api/v1/account/app-passwords",
    summary="Create an app password for a mail client",
    tag="app-passwords",
    body={
        "type": "object",
        "required": ["label"],
        "additionalProperties": False,
        "properties": {
            "label": {
                "type": "string",
                "minLength": 1,
                "maxLength": app_passwords.LABEL_MAX,
                "description": "Which client it is for, e.g. 'Thunderbird on the laptop'.",
            }
        },
    },
    answer=APP_PASSWORD,
    status=201,
    errors=(InvalidValue, AlreadyExists),
)
def create_app_password(call: Call) -> dict[str, Any]:
    """A new random app password; the answer is the only time it is shown.

    Mail clients log in to IMAP, POP3 and SMTP with the mailbox address and this
    password; with two-factor authentication on, the main password no longer works there.
    """
    services = call.services
    made, secret = app_passwords.create(
        services.store, services.settings, call.owner.address, call.body["label"], now=call.now
    )
    return {**made.to_json(), "password": secret.reveal()}


@API.operation(
    "DELETE",
    "/api/v1/account/app-passwords/{id}",
    summary="Revoke an app password",
    tag="app-passwords",
    status=204,
    errors=(NotFound,),
)
def revoke_app_password(call: Call) -> None:
    """The next login with it fails (Dovecot reads the store at every login)."""
    which = call.path["id"]
    if not which.isdigit():
        raise NotFound("no such app password", hint="see GET /api/v1/account/app-passwords")
    services = call.services
    app_passwords.revoke(
        services.store, services.settings, call.owner.address, which, now=call.now, id_only=True
    )
