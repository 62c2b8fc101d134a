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
    RELAY_PORT_IN_USE = 60
    RELAY_OPEN_RELAY = 61
    RELAY_FAULT_INVALID = 62
    RELAY_WAIT_TIMEOUT = 63
    RELAY_STORAGE_UNAVAILABLE = 64
    RELAY_UNREACHABLE = 65

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


# -- identity gate ---------------------------------------------------------------


# -- relay -------------------------------------------------------------------------


class PortInUse(MailprovError):
    """The relay cannot listen: the address is already in use."""

    code = "port-in-use"
    exit_status = ExitStatus.RELAY_PORT_IN_USE
    default_hint = "stop what listens there, or pick another: --listen HOST:PORT (0 = any free)"


class OpenRelayRefused(MailprovError):
    """Refusing to listen beyond loopback without --require-auth: that would be an open relay."""

    code = "open-relay-refused"
    exit_status = ExitStatus.RELAY_OPEN_RELAY
    default_hint = "listen on 127.0.0.1 or ::1, or turn on relay.require_auth (--require-auth)"


class FaultRuleInvalid(MailprovError):
    """That fault rule cannot be understood."""

    code = "fault-rule-invalid"
    exit_status = ExitStatus.RELAY_FAULT_INVALID
    default_hint = (
        "write STAGE:PATTERN=ACTION[@p=P][@delay=S][@times=N], e.g. "
        "'rcpt:bounce-*@example.test=550 5.1.1 no such user' or 'data:*=451 4.3.0 try later@p=0.1'"
    )


class WaitTimedOut(MailprovError):
    """No matching message arrived before the timeout."""

    code = "wait-timed-out"
    exit_status = ExitStatus.RELAY_WAIT_TIMEOUT
    default_hint = "check the query (--to, --subject), or wait longer with --timeout"


class RelayStorageUnavailable(MailprovError):
    """The relay's message storage cannot be used."""

    code = "relay-storage-unavailable"
    exit_status = ExitStatus.RELAY_STORAGE_UNAVAILABLE
    default_hint = "check relay.storage_dir in the site config: it must be a writable folder"


class RelayUnreachable(MailprovError):
    """The relay's HTTP API cannot be reached."""

    code = "relay-unreachable"
    exit_status = ExitStatus.RELAY_UNREACHABLE
    default_hint = "start it with 'mailprov relay serve', or check relay.api_listen"


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
