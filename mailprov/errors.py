"""The one error tree: every error a user can act on, with a stable code and exit status.

Each leaf class is named after the condition it reports. Its docstring is the
default message, ``code`` is a stable kebab-case string that scripts match on,
and ``exit_status`` is the process exit status the CLI returns for it. The
README's exit-status table is generated from this module
(``python -m mailprov.docs errors``), so the two cannot drift.

Exit statuses are grouped by area so that each area owns a range:
0-9 generic, 10-19 the provisioning errors of the SPEC's error table,
20-29 accounts and store, 30-39 config rendering and deploy,
40-59 identity gate, 60-69 relay, 70-74 DNS/DKIM/checks, 75 temporary failure.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, ClassVar


class ExitStatus(IntEnum):
    """Process exit statuses; one per documented error."""

    OK = 0
    INTERNAL = 1
    USAGE = 2
    NOT_FOUND = 3
    CHECK_FAILED = 4

    # -- 10-19: the SPEC's provisioning error table -------------------------
    IDENTITY_NOT_VERIFIED = 10
    NAME_MISMATCH = 11
    CODE_INVALID = 12
    PASSWORD_POLICY = 13
    ADDRESS_TAKEN = 14

    # -- 20-29: accounts, store, configuration ------------------------------
    INVALID_ADDRESS = 20
    ALREADY_EXISTS = 21
    IN_USE = 22
    CONFIG_INVALID = 23
    STORE_UNAVAILABLE = 24
    IMPORT_INVALID = 25
    MISSING_OPTION = 26
    AUDIT_BROKEN = 27
    INVALID_VALUE = 28
    FILE_EXISTS = 29

    # -- 30-39: config rendering and deploy ---------------------------------

    # -- 40-59: identity gate ------------------------------------------------

    # -- 60-69: relay ---------------------------------------------------------

    # -- 70-74: DNS, DKIM and checks ------------------------------------------
    DKIM_KEY_UNUSABLE = 70
    DKIM_NOT_PUBLISHED = 71
    CERTIFICATE_INVALID = 72
    SELECTOR_INVALID = 73
    DKIM_STATE_INVALID = 74

    TEMPFAIL = 75
    INTERRUPTED = 130


class MailprovError(Exception):
    """Something went wrong that the user can act on."""

    code: ClassVar[str] = "error"
    exit_status: ClassVar[ExitStatus] = ExitStatus.INTERNAL
    default_hint: ClassVar[str | None] = None

    def __init__(
        self,
        message: str | None = None,
        *,
        hint: str | None = None,
        request_id: str | None = None,
        **details: Any,
    ) -> None:
        self.message = message or (self.__doc__ or self.code).strip().splitlines()[0]
        self.hint = hint if hint is not None else self.default_hint
        self.request_id = request_id
        self.details = details
        super().__init__(self.message)

    def to_json(self) -> dict[str, Any]:
        """The ``{"error": {...}}`` payload the CLI prints with ``--json``."""
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.hint:
            body["hint"] = self.hint
        if self.request_id:
            body["request_id"] = self.request_id
        body.update(self.details)
        body["exit_status"] = int(self.exit_status)
        return {"error": body}


# -- generic ---------------------------------------------------------------------


class NotFound(MailprovError):
    """The requested object does not exist."""

    code = "not-found"
    exit_status = ExitStatus.NOT_FOUND


class CheckFailed(MailprovError):
    """A check did not pass."""

    code = "check-failed"
    exit_status = ExitStatus.CHECK_FAILED


class TemporaryFailure(MailprovError):
    """A server did not answer; nothing was changed. Retry later."""

    code = "temporary-failure"
    exit_status = ExitStatus.TEMPFAIL


class Interrupted(MailprovError):
    """Interrupted; nothing was changed."""

    code = "interrupted"
    exit_status = ExitStatus.INTERRUPTED


# -- accounts, store, configuration ---------------------------------------------


class InvalidAddress(MailprovError):
    """That is not a valid mail address."""

    code = "invalid-address"
    exit_status = ExitStatus.INVALID_ADDRESS
    default_hint = (
        "use Latin letters, digits, dots and hyphens, not at the start or end and not doubled"
    )


class UnknownDomain(InvalidAddress):
    """That domain is not served here."""

    code = "unknown-domain"
    default_hint = "add it first with 'mailprov domain add DOMAIN'"


class AddressTaken(MailprovError):
    """That address is already in use."""

    code = "address-taken"
    exit_status = ExitStatus.ADDRESS_TAKEN
    default_hint = "choose another address; free suggestions are listed"


class PasswordPolicy(MailprovError):
    """The password does not meet the password policy."""

    code = "password-policy"
    exit_status = ExitStatus.PASSWORD_POLICY
    default_hint = "choose a password that meets every rule listed, or use --generate"


class PasswordTooLong(PasswordPolicy):
    """The password is longer than the hash scheme can take without truncating it."""

    code = "password-too-long"


class AlreadyExists(MailprovError):
    """That object already exists."""

    code = "already-exists"
    exit_status = ExitStatus.ALREADY_EXISTS


class InUse(MailprovError):
    """That object is still in use."""

    code = "in-use"
    exit_status = ExitStatus.IN_USE


class ConfigInvalid(MailprovError):
    """The site configuration is not valid."""

    code = "config-invalid"
    exit_status = ExitStatus.CONFIG_INVALID


class StoreUnavailable(MailprovError):
    """The account store cannot be opened."""

    code = "store-unavailable"
    exit_status = ExitStatus.STORE_UNAVAILABLE
    default_hint = "check store.url in the site config, or create the store with 'mailprov init'"


class SchemaOutdated(StoreUnavailable):
    """The account store's schema is older than this version of mailprov."""

    code = "schema-outdated"
    default_hint = "run 'mailprov db upgrade'"


class ImportInvalid(MailprovError):
    """The import file has errors; nothing was imported."""

    code = "import-invalid"
    exit_status = ExitStatus.IMPORT_INVALID
    default_hint = "fix the rows listed and run the import again"


class MissingOption(MailprovError):
    """A needed answer was not given, and there is no terminal to ask on."""

    code = "missing-option"
    exit_status = ExitStatus.MISSING_OPTION


class AuditChainBroken(MailprovError):
    """The audit log's hash chain is broken: records were changed or removed."""

    code = "audit-broken"
    exit_status = ExitStatus.AUDIT_BROKEN
    default_hint = "compare the store with a backup; the first broken record is named"


class InvalidValue(MailprovError):
    """A value given is not valid."""

    code = "invalid-value"
    exit_status = ExitStatus.INVALID_VALUE


class FileExists(MailprovError):
    """The file already exists and would be overwritten."""

    code = "file-exists"
    exit_status = ExitStatus.FILE_EXISTS
    default_hint = "choose another path, or remove the file first"


# -- config rendering and deploy -------------------------------------------------


# -- identity gate ---------------------------------------------------------------


# -- relay -------------------------------------------------------------------------


# -- DNS, DKIM and checks ---------------------------------------------------------


class DkimKeyUnusable(MailprovError):
    """A DKIM private key file cannot be used."""

    code = "dkim-key-unusable"
    exit_status = ExitStatus.DKIM_KEY_UNUSABLE
    default_hint = (
        "make the key file a PEM private key, mode 0600, "
        "or make a new key with 'mailprov dkim rotate'"
    )


class DkimKeyUnsafe(DkimKeyUnusable):
    """A DKIM private key file can be read by other users."""

    code = "dkim-key-unsafe"
    default_hint = "run 'chmod 600' on the file named (and check who could have read it)"


class DkimNotPublished(MailprovError):
    """The DKIM selector's record is not visible in DNS yet; signing was not switched."""

    code = "dkim-not-published"
    exit_status = ExitStatus.DKIM_NOT_PUBLISHED
    default_hint = (
        "publish the record shown by 'mailprov dkim list DOMAIN' and wait for it to appear, "
        "or pass --force"
    )


class CertificateInvalid(MailprovError):
    """The certificate file is not a usable X.509 certificate."""

    code = "certificate-invalid"
    exit_status = ExitStatus.CERTIFICATE_INVALID
    default_hint = "point [tls] cert_file at a PEM certificate (the full chain is fine)"


class SelectorInvalid(MailprovError):
    """That is not a valid DKIM selector."""

    code = "selector-invalid"
    exit_status = ExitStatus.SELECTOR_INVALID
    default_hint = "use lower-case Latin letters, digits and inner hyphens, at most 63 characters"


class DkimStateInvalid(MailprovError):
    """The DKIM key folder's state file is damaged."""

    code = "dkim-state-invalid"
    exit_status = ExitStatus.DKIM_STATE_INVALID
    default_hint = (
        "restore the file from a backup, or move the domain's key folder aside and make new keys"
    )


def all_errors() -> list[type[MailprovError]]:
    """Every error class defined here, the root first, in definition order."""
    found: list[type[MailprovError]] = []

    def walk(cls: type[MailprovError]) -> None:
        found.append(cls)
        for sub in cls.__subclasses__():
            walk(sub)

    walk(MailprovError)
    return found
