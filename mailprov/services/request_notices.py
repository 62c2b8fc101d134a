"""Notices to a request's recovery contact, one for every state change the requester must know.

A request tells its recovery contact when it is opened, when the requester's
identity is verified, and when it is locked, rejected, expired, cancelled or
provisioned. :mod:`mailprov.services.provisioning` collects a :class:`Notice`
inside the transaction that changes the state and calls :func:`announce` after
that transaction commits, so a notice never tells of a change that was rolled
back. A notice holds no secret (no code, handle, token or password): the code
travels in a message of its own, and the temporary password is shown once to
the requester and never mailed.

A notice that cannot be sent never undoes the change: :func:`announce` logs it
(the event and the error's code, not the destination) and returns a warning for
the caller's answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailprov.errors import IDG_TABLE, MailprovError
from mailprov.system import notify
from mailprov.system.notify import Message

if TYPE_CHECKING:
    from mailprov.settings import SiteConfig

log = logging.getLogger(__name__)

Sender = Callable[[Message], str]

_NOTHING = "Nothing was created."
_NEW = "Open a new request if you still want a mailbox."

#: event -> (subject, first paragraph); ``{id}``, ``{address}`` and ``{reason}`` are filled in.
EVENTS: dict[str, tuple[str, str]] = {
    "opened": (
        "Mail request {id} opened",
        "A request for the mailbox {address} was opened with this address as its recovery "
        "contact (request {id}).\n\nNext the requester proves their identity; a confirmation "
        "code is then sent here. If you did not ask for this mailbox, ignore this message: "
        "the request expires unfinished.",
    ),
    "identity-verified": (
        "Mail request {id}: identity verified",
        "The identity of the requester of {address} was verified (request {id}).\n\n"
        "A confirmation code was sent to this address in a separate message; enter it to "
        "finish the request.",
    ),
    "locked": (
        "Mail request {id} locked",
        "Request {id} for {address} was locked after too many wrong confirmation codes.\n\n"
        "Ask for a new code to go on. If you did not type these codes, keep the request's "
        "handle to yourself.",
    ),
    "rejected": (
        "Mail request {id} rejected",
        f"Request {{id}} for {{address}} was rejected ({{reason}}). {_NOTHING} {_NEW}",
    ),
    "expired": (
        "Mail request {id} expired",
        f"Request {{id}} for {{address}} was not finished in time and has expired. "
        f"{_NOTHING} {_NEW}",
    ),
    "cancelled": (
        "Mail request {id} cancelled",
        f"Request {{id}} for {{address}} was cancelled. {_NOTHING}",
    ),
    "provisioned": ("Your mailbox {address} is ready", ""),
}


@dataclass(frozen=True)
class Notice:
    """One state change to tell a request's recovery contact about (no secret in it)."""

    event: str
    request_id: str
    address: str
    destination: str
    reason: str | None = None

    def __post_init__(self) -> None:
        if self.event not in EVENTS:  # a programming error, never user input
            msg = f"unknown request event {self.event!r}"
            raise ValueError(msg)


def reason_text(reason: str | None) -> str:
    """What a request's stored reason means: ``IDG-V05: verified identity does not match …``."""
    if not reason:
        return "no reason recorded"
    if reason in IDG_TABLE:
        template = IDG_TABLE[reason][1]
        return f"{reason}: {template}" if "{" not in template else reason
    return reason


def client_settings_notice(settings: SiteConfig, address: str, request_id: str) -> str:
    """The notice mailed after provisioning: client settings, never the password."""
    host, ports = settings.site.hostname, settings.ports
    hours = settings.passwords.temp_password_hours
    return (
        f"Request {request_id}: your mailbox {address} has been created.\n\n"
        f"Sign in with the user name {address} and the temporary password you were shown,\n"
        f"and set your own password within {hours} hours.\n\n"
        f"IMAP:  {host}, port {ports.imaps}, SSL/TLS\n"
        f"POP3:  {host}, port {ports.pop3s}, SSL/TLS\n"
        f"SMTP:  {host}, port {ports.submission}, STARTTLS, password authentication\n"
    )


def message(settings: SiteConfig, notice: Notice) -> Message:
    """The message that tells ``notice``'s destination about it."""
    subject, text = EVENTS[notice.event]
    fields = {
        "id": notice.request_id,
        "address": notice.address,
        "reason": reason_text(notice.reason),
    }
    if notice.event == "provisioned":
        body = client_settings_notice(settings, notice.address, notice.request_id)
    else:
        body = text.format(**fields) + "\n"
    return Message(notice.destination, subject.format(**fields), body)


def announce(settings: SiteConfig, send: Sender, notices: Sequence[Notice]) -> list[str]:
    """Send each notice; return a warning for each one that could not be sent.

    Call only after the transaction that made the change has committed.
    """
    warnings = []
    for notice in notices:
        try:
            send(message(settings, notice))
        except MailprovError as exc:
            log.warning(
                "request %s: the %s notice was not sent (%s)",
                notice.request_id,
                notice.event,
                exc.code,
            )
            warnings.append(
                f"the '{notice.event}' notice to the recovery contact could not be sent "
                f"({exc.code}); the request's change stands"
            )
    return warnings


def sender_for(settings: SiteConfig) -> Sender:
    """A sender that delivers through the site's ``[notify]`` settings."""

    def send(msg: Message) -> str:
        return notify.send(settings.notify, msg, base_dir=settings.base_dir)

    return send
