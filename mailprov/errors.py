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
    CONFIG_CHECK_FAILED = 30
    FILE_EDITED = 31
    TARGET_NOT_WRITABLE = 32
    RELOAD_FAILED = 33
    NO_ROLLBACK = 34
    SERVER_TOOL_MISSING = 35

    # -- 40-59: identity gate ------------------------------------------------

    # -- 60-69: relay ---------------------------------------------------------

    # -- 70-74: DNS, DKIM and checks ------------------------------------------

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


class ConfigCheckFailed(MailprovError):
    """The rendered configuration failed the server's own check; nothing was installed."""

    code = "config-check-failed"
    exit_status = ExitStatus.CONFIG_CHECK_FAILED
    default_hint = "fix the site config setting the validator's message points at, then run again"


class FileEditedByHand(MailprovError):
    """A file mailprov installed was changed by hand since the last apply; nothing was installed."""

    code = "file-edited"
    exit_status = ExitStatus.FILE_EDITED
    default_hint = (
        "move the change into the site config (see 'mailprov deploy plan --diff'), "
        "or overwrite it with 'mailprov deploy apply --force'"
    )


class TargetNotWritable(MailprovError):
    """The deploy target cannot be written; nothing was installed."""

    code = "target-not-writable"
    exit_status = ExitStatus.TARGET_NOT_WRITABLE
    default_hint = "run as root, or choose a writable folder with --target DIR"


class ReloadFailed(MailprovError):
    """A server did not accept the new configuration; the previous files were put back."""

    code = "reload-failed"
    exit_status = ExitStatus.RELOAD_FAILED
    default_hint = "see the server's log for the reason; the previous configuration is active"


class NothingToRollBack(MailprovError):
    """There is no previous configuration to roll back to."""

    code = "no-rollback"
    exit_status = ExitStatus.NO_ROLLBACK
    default_hint = "a rollback needs an earlier 'mailprov deploy apply' on this target"


class ServerToolMissing(MailprovError):
    """A Postfix or Dovecot command needed to check the configuration is not installed."""

    code = "server-tool-missing"
    exit_status = ExitStatus.SERVER_TOOL_MISSING
    default_hint = (
        "install the servers: apt-get install postfix postfix-sqlite postfix-pgsql "
        "dovecot-core dovecot-imapd dovecot-pop3d dovecot-lmtpd dovecot-sqlite dovecot-pgsql"
    )


# -- identity gate ---------------------------------------------------------------


# -- relay -------------------------------------------------------------------------


# -- DNS, DKIM and checks ---------------------------------------------------------


def all_errors() -> list[type[MailprovError]]:
    """Every error class defined here, the root first, in definition order."""
    found: list[type[MailprovError]] = []

    def walk(cls: type[MailprovError]) -> None:
        found.append(cls)
        for sub in cls.__subclasses__():
            walk(sub)

    walk(MailprovError)
    return found
