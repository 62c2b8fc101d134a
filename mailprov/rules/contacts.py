"""Recovery contacts: a mail address, or an E.164 phone number where an SMS gateway exists.

One check for every place that takes a contact (a request's recovery contact, a
mailbox's recovery contacts, the admin's ``mailbox contact add``). A phone number
is accepted only when the caller says phones can be reached (``[notify] hook``
is set): otherwise a code could never arrive. Phone numbers may be typed with
spaces, hyphens, dots or brackets between the digits; they are kept as ``+`` and
8 to 15 digits (ITU-T E.164: at most 15 digits, no leading zero in the country code).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from mailprov.errors import MailprovError, RecoveryInvalid
from mailprov.rules.addresses import normalise_domain

ContactKindName = Literal["email", "phone"]

_EMAIL_RE = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[^@\s]{1,253}")
_PHONE_RE = re.compile(r"\+[1-9][0-9]{7,14}")
_PHONE_SEPARATORS = str.maketrans("", "", " -.()")
_PHONE_CHARS = re.compile(r"\+[0-9 .()-]*")
MAX_EMAIL = 254


@dataclass(frozen=True)
class Contact:
    """A checked contact: its normal form and its kind."""

    value: str
    kind: ContactKindName


def is_phone(value: str) -> bool:
    """Whether a (checked) contact is a phone number rather than a mail address."""
    return value.startswith("+") and "@" not in value


def mask(value: str) -> str:
    """A contact as audit records and notices show it: enough to recognise, not to reuse."""
    if is_phone(value):
        return value[:3] + "*" * max(len(value) - 7, 1) + value[-4:]
    local, _, domain = value.rpartition("@")
    return f"{local[:1]}***@{domain}"


def _phone(value: str) -> Contact:
    digits = value.translate(_PHONE_SEPARATORS)
    if not _PHONE_CHARS.fullmatch(value) or not _PHONE_RE.fullmatch(digits):
        raise RecoveryInvalid(
            f"'{value[:32]}' is not a phone number in international form",
            hint="write it as + country code and number, 8 to 15 digits, e.g. +79161234567",
        )
    return Contact(digits, "phone")


def _email(value: str) -> Contact:
    shown = value[:64]
    if not _EMAIL_RE.fullmatch(value) or len(value) > MAX_EMAIL:
        raise RecoveryInvalid(f"'{shown}' is not a valid mail address or phone number")
    local, _, domain = value.partition("@")
    try:
        value = f"{local}@{normalise_domain(domain)}"
    except MailprovError:
        raise RecoveryInvalid(f"'{shown}' is not a valid mail address or phone number") from None
    if "." not in value.partition("@")[2]:
        raise RecoveryInvalid(f"the recovery address {value} has no domain part with a dot")
    return Contact(value, "email")


def parse_contact(raw: str, *, phones: bool, mailbox: str = "") -> Contact:
    """Check a recovery contact and return its normal form.

    Args:
        raw: as typed.
        phones: whether phone numbers can be reached here (``[notify] hook`` is set).
        mailbox: the mailbox it is for (a mailbox cannot be its own recovery contact).

    Raises:
        RecoveryInvalid: malformed, a phone number without an SMS gateway, or the mailbox itself.
    """
    value = raw.strip()
    if value.startswith("+") and "@" not in value:
        contact = _phone(value)
        if not phones:
            raise RecoveryInvalid(
                f"{mask(contact.value)} is a phone number, and this site has no SMS gateway",
                hint="give a mail address, or ask the administrator to set [notify] hook",
            )
        return contact
    contact = _email(value)
    if mailbox and contact.value.lower() == mailbox.lower():
        raise RecoveryInvalid(
            "a mailbox cannot be its own recovery contact",
            hint="give an address or phone number you can read without this mailbox",
        )
    return contact
