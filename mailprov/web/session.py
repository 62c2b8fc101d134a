"""Operations: sign in and out, the session, the owner's own password.

A new session may be limited to one step: with two-factor authentication on it
must give a code first; with a temporary password, setting a new one is the only
thing it can do (``stage`` in every answer says which).
"""

from __future__ import annotations

from typing import Any

from mailprov.errors import PasswordPolicy, SignInFailed, SignInLocked
from mailprov.model import Secret, SessionStage
from mailprov.services import accounts, owner
from mailprov.web.api import ANY_STAGE, API, Call

ADDRESS = {"type": "string", "minLength": 3, "maxLength": 254, "description": "A mailbox address"}
PASSWORD = {"type": "string", "minLength": 1, "maxLength": 1024, "writeOnly": True}

SESSION = API.schema(
    "Session",
    {
        "type": "object",
        "required": ["address", "stage", "csrf_token", "expires_at"],
        "properties": {
            "address": {"type": "string"},
            "stage": {
                "enum": [s.value for s in SessionStage],
                "description": (
                    "second-factor: give the code; change-password: set a new password; "
                    "full: everything."
                ),
            },
            "csrf_token": {
                "type": "string",
                "description": "Send it as X-CSRF-Token with writes that use the cookie.",
            },
            "expires_at": {"type": "integer", "description": "Unix seconds."},
            "token": {
                "type": "string",
                "description": "Only when signing in: the session token for "
                "'Authorization: Bearer' (browsers use the cookie instead).",
            },
        },
    },
)


def _session_answer(call: Call, session: owner.OwnerSession, token: Secret) -> dict[str, Any]:
    return {
        "address": session.address,
        "stage": session.stage.value,
        "csrf_token": owner.csrf_token(call.services.pepper, token),
        "expires_at": session.expires_at,
    }


@API.operation(
    "POST",
    "/api/v1/session",
    summary="Sign in with the mailbox address and password",
    tag="session",
    stages=None,
    body={
        "type": "object",
        "required": ["address", "password"],
        "additionalProperties": False,
        "properties": {"address": ADDRESS, "password": PASSWORD},
    },
    answer=SESSION,
    status=201,
    errors=(SignInFailed, SignInLocked, PasswordPolicy),
)
def sign_in(call: Call) -> dict[str, Any]:
    """Sign in; the session cookie is set (HttpOnly, SameSite=Strict).

    The answer's stage says what the session may do. The same refusal comes for an
    unknown address, a disabled mailbox and a wrong password. After [web]
    signin_max_failures failures of one address (or signin_max_failures_per_client of
    one client) within signin_window_seconds, sign-in is refused with 429
    'sign-in-locked' and Retry-After for signin_lockout_seconds, for known and
    unknown addresses alike; the owner of a real mailbox is notified.
    """
    services = call.services
    signed = owner.sign_in(
        services.store,
        services.settings,
        call.body["address"],
        Secret(call.body["password"]),
        client=call.client,
        now=call.now,
    )
    call.set_session = signed.token
    return {**_session_answer(call, signed.session, signed.token), "token": signed.token.reveal()}


@API.operation(
    "GET",
    "/api/v1/session",
    summary="The current session",
    tag="session",
    stages=ANY_STAGE,
    answer=SESSION,
)
def show_session(call: Call) -> dict[str, Any]:
    """The caller's session: whose, its stage, and its CSRF token."""
    assert call.token is not None  # noqa: S101 (narrows a type)
    return _session_answer(call, call.owner, call.token)


@API.operation(
    "DELETE",
    "/api/v1/session",
    summary="Sign out",
    tag="session",
    stages=ANY_STAGE,
    status=204,
)
def sign_out(call: Call) -> None:
    """End the session and clear its cookie."""
    owner.sign_out(call.services.store, call.owner, now=call.now)
    call.set_session = ""


@API.operation(
    "PUT",
    "/api/v1/account/password",
    summary="Set a new password (the forced first change, or any later one)",
    tag="account",
    stages=frozenset({SessionStage.CHANGE_PASSWORD, SessionStage.FULL}),
    body={
        "type": "object",
        "required": ["current", "new"],
        "additionalProperties": False,
        "properties": {"current": PASSWORD, "new": PASSWORD},
    },
    answer=SESSION,
    errors=(SignInFailed, PasswordPolicy),
)
def change_password(call: Call) -> dict[str, Any]:
    """Set a new password: policy-checked, different from the current one.

    Ends the owner's other sessions; this one becomes 'full'. The owner's verified
    recovery contacts are told.
    """
    assert call.token is not None  # noqa: S101 (narrows a type)
    session = owner.change_password(
        call.services.store,
        call.services.settings,
        call.owner,
        Secret(call.body["current"]),
        Secret(call.body["new"]),
        now=call.now,
    )
    return _session_answer(call, session, call.token)


ACCOUNT = API.schema(
    "Account",
    {
        "type": "object",
        "required": ["address", "display_name", "quota_bytes", "password_changed_at"],
        "properties": {
            "address": {"type": "string"},
            "display_name": {"type": "string"},
            "quota_bytes": {"type": "integer", "description": "0 = unlimited"},
            "password_changed_at": {"type": "integer"},
            "password_stale": {"type": "boolean"},
        },
    },
)


@API.operation(
    "GET", "/api/v1/account", summary="The signed-in owner's mailbox", tag="account", answer=ACCOUNT
)
def show_account(call: Call) -> dict[str, Any]:
    """The mailbox of the signed-in owner."""
    settings = call.services.settings
    box = accounts.get_mailbox(
        call.services.store, call.owner.address, settings.passwords, now=call.now
    )
    return {
        "address": box.address,
        "display_name": box.display_name,
        "quota_bytes": box.quota_bytes,
        "password_changed_at": box.password_changed_at,
        "password_stale": bool(box.password_stale),
    }
