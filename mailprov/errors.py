"""The one error tree: every error a user can act on, with a stable code and exit status.

Each leaf class is named after the condition it reports. Its docstring is the
default message, ``code`` is a stable kebab-case string that scripts match on,
and ``exit_status`` is the process exit status the CLI returns for it. The
README's exit-status table is generated from this module
(``python -m mailprov.cli.docs errors``), so the two cannot drift.

Exit statuses are grouped by area so that each area owns a range:
0-9 generic, 10-19 the provisioning errors of the SPEC's error table,
20-29 and 90-99 accounts and store, 30-39 config rendering and deploy,
40-59 identity gate, 60-69 relay, 70-74 and 76-89 DNS/DKIM/checks, 75 temporary failure,
100-129 the owner's side (``mailprov serve``), 131-134 the admin API's tokens.
100-129 the owner's side (``mailprov serve``), 130-134 the admin API's tokens,
140-144 identity by redirect (OpenID Connect).
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
    TERMS_NOT_ACCEPTED = 15
    RECOVERY_UNREACHABLE = 16
    REQUEST_LOCKED = 17
    CODE_EXPIRED = 18
    REQUEST_EXPIRED = 19

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
    TOKEN_REJECTED = 40
    TOKEN_EXPIRED = 41
    TOKEN_WRONG_REQUEST = 42
    TOKEN_REPLAYED = 43
    CERTIFICATE_UNREADABLE = 44
    CONTAINER_PASSWORD = 45
    CONTAINER_REFUSED = 46
    CERTIFICATE_ALGORITHM = 47
    CERTIFICATE_EXPIRED = 48
    CERTIFICATE_UNTRUSTED = 49
    REVOCATION_UNKNOWN = 50
    CERTIFICATE_REVOKED = 51
    POSSESSION_NOT_PROVEN = 52
    KEY_ALREADY_BOUND = 53
    CODE_USED = 54
    RATE_LIMITED = 55
    CONFIRMATION_LOCKED = 56
    REQUEST_STATE = 57
    TRUST_INVALID = 58
    DOMAIN_NOT_VERIFIED = 59

    # -- 60-69: relay ---------------------------------------------------------
    RELAY_PORT_IN_USE = 60
    RELAY_OPEN_RELAY = 61
    RELAY_FAULT_INVALID = 62
    RELAY_WAIT_TIMEOUT = 63
    RELAY_STORAGE_UNAVAILABLE = 64
    RELAY_UNREACHABLE = 65

    # -- 70-74: DNS, DKIM and checks ------------------------------------------
    DKIM_KEY_UNUSABLE = 70
    DKIM_NOT_PUBLISHED = 71
    CERTIFICATE_INVALID = 72
    SELECTOR_INVALID = 73
    DKIM_STATE_INVALID = 74
    # 76-89 continue the DNS, DKIM and checks range (75 is the shared TEMPFAIL).
    DELIVERY_AUTH_FAILED = 76
    DELIVERY_REFUSED = 77
    DELIVERY_NOT_SEEN = 78
    DOCTOR_FOUND_ERRORS = 79

    # -- 90-99: accounts and store, continued (20-29 is full) -----------------
    PASSWORDS_NOT_WRITTEN = 90
    CONFLICT = 91
    STATE_INVALID = 92
    BACKUP_INVALID = 93
    RESTORE_REFUSED = 94
    BACKUP_TOO_NEW = 95
    # 97-98: moving a mailbox between backends (services/move.py)
    MOVE_REFUSED = 97
    MOVE_FAILED = 98

    # -- 100-129: the owner's side (mailprov serve) ---------------------------
    # 100-109 sign-in and sessions, 110-114 two-factor, 115-119 recovery and reset,
    # 120-124 filters (Sieve), 125-129 requests over HTTP.
    NOT_SIGNED_IN = 100
    SIGN_IN_FAILED = 101
    SESSION_STAGE = 102
    CSRF_REFUSED = 103
    SIGN_IN_LOCKED = 104
    # 110-114 two-factor authentication (services/twofactor.py)
    TWO_FACTOR_CODE_INVALID = 110
    TWO_FACTOR_CODE_EXPIRED = 111
    TWO_FACTOR_CODE_REUSED = 112
    TWO_FACTOR_LOCKED = 113
    TWO_FACTOR_STATE = 114
    # 115-119 recovery contacts and password reset
    RESET_ROUTE_DISABLED = 115
    IDENTITY_MISMATCH = 116
    RESET_ENDED = 117
    LAST_CONTACT = 118
    CONTACT_NOT_PENDING = 119
    # 120-124 filters (Sieve)
    SIEVE_INVALID = 120
    SIEVE_TOO_LARGE = 121
    FILTERS_NOT_INSTALLED = 122
    FILTERS_INVALID = 123
    # 125-129 requests over HTTP
    REQUEST_UNKNOWN = 125
    DOMAIN_HANDLE_REQUIRED = 126
    CLIENT_RATE_LIMITED = 127
    # -- 131-134: the admin API's tokens (130 is INTERRUPTED: 128 + SIGINT)
    ADMIN_TOKEN_REFUSED = 131
    SCOPE_REFUSED = 132
    # -- 140-144: identity by redirect (OpenID Connect); the token it brings is checked by
    # the gate itself, so its refusals keep the gate's IDG codes and statuses (40-59).
    OIDC_STATE_INVALID = 140
    OIDC_STATE_EXPIRED = 141
    OIDC_STATE_USED = 142
    OIDC_PROVIDER_REFUSED = 143
    OIDC_UNAVAILABLE = 144

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


class MalformedRequest(InvalidValue):
    """The request is not what the operation's schema describes.

    HTTP 400; an InvalidValue otherwise (a value in the right form that a rule refuses)
    is 422.
    """

    code = "malformed-request"


class UnknownBackend(InvalidValue):
    """That backend is not one of this site's backends ([cluster] backends)."""

    code = "unknown-backend"
    default_hint = "name one of [cluster] backends ('mailprov config show' lists them)"


class FileExists(MailprovError):
    """The file already exists and would be overwritten."""

    code = "file-exists"
    exit_status = ExitStatus.FILE_EXISTS
    default_hint = "choose another path, or remove the file first"


class PasswordsNotWritten(MailprovError):
    """The generated passwords could not be written to their file; nothing was imported."""

    code = "passwords-not-written"
    exit_status = ExitStatus.PASSWORDS_NOT_WRITTEN
    default_hint = (
        "free space on that file system (or fix the error named), or choose another "
        "--passwords-out, then run the import again"
    )


class Conflict(MailprovError):
    """The object exists with other attributes than the ones given; nothing was changed."""

    code = "conflict"
    exit_status = ExitStatus.CONFLICT
    default_hint = "change the existing object with its 'set' command (e.g. 'mailprov mailbox set')"


class StateInvalid(MailprovError):
    """The state file is not valid; nothing was changed."""

    code = "state-invalid"
    exit_status = ExitStatus.STATE_INVALID
    default_hint = "fix the problems listed (each names its line) and run again"


class BackupInvalid(MailprovError):
    """The backup cannot be used: it is damaged, changed, or the passphrase is wrong."""

    code = "backup-invalid"
    exit_status = ExitStatus.BACKUP_INVALID
    default_hint = "use another copy of the backup, or the right passphrase"


class RestoreRefused(MailprovError):
    """The restore would overwrite data that is there; nothing was restored."""

    code = "restore-refused"
    exit_status = ExitStatus.RESTORE_REFUSED
    default_hint = "restore into an empty store, or pass --force to replace what is there"


class BackupTooNew(MailprovError):
    """The backup was made with a newer store schema than this mailprov knows."""

    code = "backup-too-new"
    exit_status = ExitStatus.BACKUP_TOO_NEW
    default_hint = "restore it with the mailprov version that made it (or a newer one)"


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
        "or overwrite it with 'mailprov deploy apply --overwrite-edits'"
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
        "dovecot-core dovecot-imapd dovecot-pop3d dovecot-lmtpd dovecot-sqlite dovecot-pgsql "
        "dovecot-sieve dovecot-managesieved"
    )


# -- identity gate ---------------------------------------------------------------
#
# Scheme: every check of docs/identity-gate.md has an IDG code (IDG-T01 ...). The
# code is carried in the error's details as ``idg`` and leads the message
# ("IDG-T04: identity token key 'k1' is not trusted"); ``code`` is the class's
# stable kebab-case name shared by related checks, and each class has its own exit
# status. Build these errors with :func:`idg_error`, which formats the message
# from IDG_TABLE and escapes attacker-supplied values.


class IdentityGateError(MailprovError):
    """The identity gate refused the request."""

    code = "identity-gate"
    exit_status = ExitStatus.IDENTITY_NOT_VERIFIED


class IdentityNotVerified(IdentityGateError):
    """Identity not verified."""

    code = "identity-not-verified"
    exit_status = ExitStatus.IDENTITY_NOT_VERIFIED
    default_hint = "verify your identity at the identity provider to the required level, then retry"


class NameMismatch(IdentityGateError):
    """The verified identity does not match the requested owner."""

    code = "name-mismatch"
    exit_status = ExitStatus.NAME_MISMATCH
    default_hint = "give the name exactly as the identity provider has it (or leave --name out)"


class CodeInvalid(IdentityGateError):
    """The confirmation code is incorrect."""

    code = "code-invalid"
    exit_status = ExitStatus.CODE_INVALID
    default_hint = "type the 6-digit code from the latest message"


class TermsNotAccepted(IdentityGateError):
    """The terms of service were not accepted (consent not given)."""

    code = "terms-not-accepted"
    exit_status = ExitStatus.TERMS_NOT_ACCEPTED
    default_hint = "read the terms and pass --accept-terms"


class RecoveryUnreachable(IdentityGateError):
    """The recovery address cannot be reached."""

    code = "recovery-unreachable"
    exit_status = ExitStatus.RECOVERY_UNREACHABLE
    default_hint = "check the recovery address and [notify], then 'mailprov request resend ID'"


class RecoveryInvalid(RecoveryUnreachable):
    """The recovery address is not a valid mail address."""

    code = "recovery-invalid"
    default_hint = "give a recovery address you can read, e.g. --recovery you@example.org"


class RequestLocked(IdentityGateError):
    """The request is locked after too many wrong codes."""

    code = "request-locked"
    exit_status = ExitStatus.REQUEST_LOCKED
    default_hint = "request a new code with 'mailprov request resend ID'"


class CodeExpired(IdentityGateError):
    """The confirmation code has expired."""

    code = "code-expired"
    exit_status = ExitStatus.CODE_EXPIRED
    default_hint = "request a new code with 'mailprov request resend ID'"


class RequestExpired(IdentityGateError):
    """The provisioning request has expired."""

    code = "request-expired"
    exit_status = ExitStatus.REQUEST_EXPIRED
    default_hint = "open a new request with 'mailprov request open'"


class TokenRejected(IdentityGateError):
    """The identity token was rejected."""

    code = "token-rejected"
    exit_status = ExitStatus.TOKEN_REJECTED
    default_hint = "get a new token from a trusted identity provider for this request"


class TokenTimeInvalid(IdentityGateError):
    """The identity token is outside its validity period."""

    code = "token-time-invalid"
    exit_status = ExitStatus.TOKEN_EXPIRED
    default_hint = "get a fresh token (and check this host's clock)"


class TokenWrongRequest(IdentityGateError):
    """The identity token was issued for another request."""

    code = "token-wrong-request"
    exit_status = ExitStatus.TOKEN_WRONG_REQUEST
    default_hint = "get a token with this request's nonce ('mailprov request show ID')"


class TokenReplayed(IdentityGateError):
    """The identity token has already been used."""

    code = "token-replayed"
    exit_status = ExitStatus.TOKEN_REPLAYED
    default_hint = "a token is good for one request only; get a new one"


class CertificateUnreadable(IdentityGateError):
    """The certificate file cannot be read."""

    code = "certificate-unreadable"
    exit_status = ExitStatus.CERTIFICATE_UNREADABLE
    default_hint = "give a .cer/.pem/.der certificate or a .p12/.pfx container, at most 64 KiB"


class ContainerPassword(IdentityGateError):
    """The certificate container password is wrong or unusable."""

    code = "container-password"
    exit_status = ExitStatus.CONTAINER_PASSWORD
    default_hint = "type the container's password again; if it is right, the file is damaged"


class ContainerRefused(IdentityGateError):
    """The certificate container is refused."""

    code = "container-refused"
    exit_status = ExitStatus.CONTAINER_REFUSED
    default_hint = "export the certificate and its key again with standard settings"


class CertificateAlgorithm(IdentityGateError):
    """The certificate's key algorithm is not supported."""

    code = "certificate-algorithm"
    exit_status = ExitStatus.CERTIFICATE_ALGORITHM
    default_hint = "use an RSA (2048+), P-256/P-384 or Ed25519 certificate, or the ESIA bridge"


class CertificateOutOfDate(IdentityGateError):
    """The certificate is outside its validity period."""

    code = "certificate-out-of-date"
    exit_status = ExitStatus.CERTIFICATE_EXPIRED
    default_hint = "use a currently valid certificate (and check this host's clock)"


class CertificateUntrusted(IdentityGateError):
    """The certificate is not issued by a trusted authority."""

    code = "certificate-untrusted"
    exit_status = ExitStatus.CERTIFICATE_UNTRUSTED
    default_hint = "use a certificate from an authority listed by 'mailprov identity trust list'"


class RevocationUnknown(IdentityGateError):
    """The certificate's revocation status cannot be checked."""

    code = "revocation-unknown"
    exit_status = ExitStatus.REVOCATION_UNKNOWN
    default_hint = "an administrator must install a current CRL ('identity trust add-ca --crl')"


class CertificateRevoked(IdentityGateError):
    """The certificate was revoked."""

    code = "certificate-revoked"
    exit_status = ExitStatus.CERTIFICATE_REVOKED
    default_hint = "use a certificate that has not been revoked"


class PossessionNotProven(IdentityGateError):
    """Possession of the certificate's key could not be proven."""

    code = "possession-not-proven"
    exit_status = ExitStatus.POSSESSION_NOT_PROVEN
    default_hint = (
        "get a fresh challenge ('mailprov request challenge ID') and sign it with "
        "'mailprov identity sign-challenge'"
    )


class KeyAlreadyBound(IdentityGateError):
    """This key is already registered to another account."""

    code = "key-already-bound"
    exit_status = ExitStatus.KEY_ALREADY_BOUND
    default_hint = "use a certificate with a key of your own"


class CodeUsed(IdentityGateError):
    """The confirmation code has already been used."""

    code = "code-used"
    exit_status = ExitStatus.CODE_USED


class RateLimited(IdentityGateError):
    """Too many codes or requests asked for in too short a time."""

    code = "rate-limited"
    exit_status = ExitStatus.RATE_LIMITED
    default_hint = "wait, then run 'mailprov request resend ID'"


class ConfirmationLocked(IdentityGateError):
    """Confirmation is locked for this account."""

    code = "confirmation-locked"
    exit_status = ExitStatus.CONFIRMATION_LOCKED
    default_hint = "wait until the time named; after 100 failures an administrator must unlock it"


class WrongRequestState(IdentityGateError):
    """The request is not in a state that allows this."""

    code = "request-state"
    exit_status = ExitStatus.REQUEST_STATE
    default_hint = "see the request's state with 'mailprov request show ID'"


class TrustInvalid(IdentityGateError):
    """The trust configuration is not valid."""

    code = "trust-invalid"
    exit_status = ExitStatus.TRUST_INVALID


class DomainNotVerified(IdentityGateError):
    """The domain's ownership is not proven."""

    code = "domain-not-verified"
    exit_status = ExitStatus.DOMAIN_NOT_VERIFIED
    default_hint = "prove it: 'domain verify-start DOMAIN', publish the TXT record, 'domain verify'"


# -- the owner's side (mailprov serve) -------------------------------------------------


class NotSignedIn(MailprovError):
    """Sign in first: there is no session, or it has ended."""

    code = "not-signed-in"
    exit_status = ExitStatus.NOT_SIGNED_IN
    default_hint = "sign in again (POST /api/v1/session)"


class SignInFailed(MailprovError):
    """The address or the password is wrong."""

    code = "sign-in-failed"
    exit_status = ExitStatus.SIGN_IN_FAILED
    default_hint = "check both; after several failures sign-in is locked for a while"


class SessionStageRefused(MailprovError):
    """Finish signing in first."""

    code = "session-stage"
    exit_status = ExitStatus.SESSION_STAGE
    default_hint = "give the two-factor code, or set a new password, as 'stage' says"


class CsrfRefused(MailprovError):
    """The request lacks the session's CSRF token."""

    code = "csrf-refused"
    exit_status = ExitStatus.CSRF_REFUSED
    default_hint = "send the csrf_token of GET /api/v1/session in the X-CSRF-Token header"


class AdminTokenRefused(MailprovError):
    """A valid admin token is needed: it is missing, unknown, revoked or expired."""

    code = "admin-token-refused"
    exit_status = ExitStatus.ADMIN_TOKEN_REFUSED
    default_hint = "send 'Authorization: Bearer TOKEN' with a token from 'mailprov token create'"


class ScopeRefused(MailprovError):
    """The admin token lacks the scope this needs."""

    code = "scope-refused"
    exit_status = ExitStatus.SCOPE_REFUSED
    default_hint = "create a token with that scope: 'mailprov token create --scope SCOPE'"


class RequestUnknown(NotFound):
    """No request has that number and handle."""

    code = "request-unknown"
    exit_status = ExitStatus.REQUEST_UNKNOWN
    default_hint = (
        "give the request's number and, in the X-Request-Handle header, the handle shown "
        "once when it was opened"
    )


class ClientRateLimited(RateLimited):
    """Too many requests or domain proofs were started from this client in the last hour."""

    code = "client-rate-limited"
    exit_status = ExitStatus.CLIENT_RATE_LIMITED
    default_hint = "wait the time named, or go on with what this client has started already"


class DomainHandleRequired(MailprovError):
    """The domain was proven through the portal: a request at it needs that proof's handle."""

    code = "domain-handle-required"
    exit_status = ExitStatus.DOMAIN_HANDLE_REQUIRED
    default_hint = (
        "give, in the X-Domain-Handle header, the domain handle shown once when the domain's "
        "proof was started; or ask the administrator to open the domain to every applicant "
        "('mailprov domain set DOMAIN --open-requests')"
    )


class TwoFactorCodeInvalid(MailprovError):
    """The two-factor code is wrong."""

    code = "two-factor-code-invalid"
    exit_status = ExitStatus.TWO_FACTOR_CODE_INVALID
    default_hint = (
        "type the 6-digit code your authenticator app shows now, or one of your recovery codes"
    )


class TwoFactorCodeExpired(MailprovError):
    """That two-factor code has expired."""

    code = "two-factor-code-expired"
    exit_status = ExitStatus.TWO_FACTOR_CODE_EXPIRED
    default_hint = (
        "codes change every 30 seconds: type the one shown now; if fresh codes are refused "
        "too, set the clock of your phone to automatic time"
    )


class TwoFactorCodeReused(MailprovError):
    """That two-factor code was already used."""

    code = "two-factor-code-reused"
    exit_status = ExitStatus.TWO_FACTOR_CODE_REUSED
    default_hint = "wait for the next code (at most 30 seconds) and type that one"


class TwoFactorLocked(MailprovError):
    """Too many wrong two-factor codes: the second step is locked for a while."""

    code = "two-factor-locked"
    exit_status = ExitStatus.TWO_FACTOR_LOCKED
    default_hint = "wait until the time given in 'locked_until', then sign in again"


class TwoFactorState(MailprovError):
    """Two-factor authentication is not in a state that allows this."""

    code = "two-factor-state"
    exit_status = ExitStatus.TWO_FACTOR_STATE
    default_hint = "see GET /api/v1/account/2fa for whether it is on, off or being set up"


class SieveInvalid(MailprovError):
    """Pigeonhole refused the Sieve script; nothing was changed."""

    code = "sieve-invalid"
    exit_status = ExitStatus.SIEVE_INVALID
    default_hint = "fix the lines named in 'problems' and send it again"


class SieveTooLarge(MailprovError):
    """The Sieve script is larger than this site allows; nothing was changed."""

    code = "sieve-too-large"
    exit_status = ExitStatus.SIEVE_TOO_LARGE
    default_hint = "use fewer or shorter rules, or a shorter vacation text"


class FiltersInvalid(InvalidValue):
    """A field of the filter forms is not accepted; nothing was changed."""

    code = "filters-invalid"
    exit_status = ExitStatus.FILTERS_INVALID
    default_hint = "correct the field named in 'field' and send the forms again"


class FiltersNotInstalled(MailprovError):
    """The filters could not be checked or written to the mail server; nothing was changed."""

    code = "filters-not-installed"
    exit_status = ExitStatus.FILTERS_NOT_INSTALLED
    default_hint = "retry later; if it persists, the administrator should run 'mailprov doctor'"


class SignInLocked(MailprovError):
    """Sign-in is locked for a while after too many failed attempts."""

    code = "sign-in-locked"
    exit_status = ExitStatus.SIGN_IN_LOCKED
    default_hint = (
        "wait retry_after seconds (the Retry-After header), or reset the password, which unlocks it"
    )


class ResetRouteDisabled(MailprovError):
    """That way of resetting a password is not enabled on this site."""

    code = "reset-route-disabled"
    exit_status = ExitStatus.RESET_ROUTE_DISABLED
    default_hint = "use a route [passwords] reset_via allows, or ask the administrator"


class IdentityMismatch(MailprovError):
    """The verified identity is not the one this mailbox was provisioned for."""

    code = "identity-mismatch"
    exit_status = ExitStatus.IDENTITY_MISMATCH
    default_hint = (
        "prove the identity you had when the mailbox was created, or reset through a recovery "
        "contact"
    )


class ResetEnded(MailprovError):
    """This password reset is unknown, used or expired."""

    code = "reset-ended"
    exit_status = ExitStatus.RESET_ENDED
    default_hint = "start a new password reset (POST /api/v1/password-reset)"


class LastRecoveryContact(MailprovError):
    """The last verified recovery contact cannot be removed."""

    code = "last-contact"
    exit_status = ExitStatus.LAST_CONTACT
    default_hint = "add and confirm another recovery contact first, then remove this one"


class ContactNotPending(MailprovError):
    """That recovery contact is not waiting for confirmation."""

    code = "contact-not-pending"
    exit_status = ExitStatus.CONTACT_NOT_PENDING
    default_hint = "add the contact first (a code is sent to it), then confirm it with that code"


# -- identity by redirect (OpenID Connect) -------------------------------------------


class OidcStateInvalid(MailprovError):
    """This sign-in at the identity provider is unknown here, or was started in another browser."""

    code = "oidc-state-invalid"
    exit_status = ExitStatus.OIDC_STATE_INVALID
    default_hint = (
        "start again from your request (in this browser): POST "
        "/api/v1/requests/NUMBER/identity/oidc"
    )


class OidcStateExpired(MailprovError):
    """This sign-in at the identity provider took too long and has expired."""

    code = "oidc-state-expired"
    exit_status = ExitStatus.OIDC_STATE_EXPIRED
    default_hint = "start the sign-in with the identity provider again"


class OidcStateUsed(MailprovError):
    """This sign-in at the identity provider has already been used (or a newer one replaced it)."""

    code = "oidc-state-used"
    exit_status = ExitStatus.OIDC_STATE_USED
    default_hint = "each sign-in works once: start it again, and use only the newest"


class OidcProviderRefused(MailprovError):
    """The identity provider did not sign you in."""

    code = "oidc-provider-refused"
    exit_status = ExitStatus.OIDC_PROVIDER_REFUSED
    default_hint = (
        "sign in at the identity provider and allow the request, then try again; or prove "
        "who you are with an identity token or a certificate"
    )


class OidcUnavailable(MailprovError):
    """Identity by redirect is not available now."""

    code = "oidc-unavailable"
    exit_status = ExitStatus.OIDC_UNAVAILABLE
    default_hint = (
        "retry later, or prove who you are with an identity token or a certificate; "
        "administrators: check [oidc] and that the provider answers"
    )


#: IDG code -> (error class, message template) — the tables of docs/identity-gate.md.
IDG_TABLE: dict[str, tuple[type[IdentityGateError], str]] = {
    "IDG-T01": (TokenRejected, "identity token is malformed"),
    "IDG-T02": (TokenRejected, "identity token type '{typ}' is not accepted (expected '{cfg}')"),
    "IDG-T03": (TokenRejected, "identity token uses unsupported header '{name}'"),
    "IDG-T04": (TokenRejected, "identity token key '{kid}' is not trusted"),
    "IDG-T05": (TokenRejected, "identity token algorithm '{alg}' is not allowed"),
    "IDG-T06": (TokenRejected, "identity token signature is invalid"),
    "IDG-T07": (TokenRejected, "identity token issuer '{iss}' is not trusted for key '{kid}'"),
    "IDG-T08": (TokenRejected, "identity token is not addressed to this service"),
    "IDG-T09": (TokenTimeInvalid, "identity token expired at {exp}Z"),
    "IDG-T10": (TokenTimeInvalid, "identity token is not valid yet"),
    "IDG-T11": (TokenTimeInvalid, "identity token lifetime exceeds 600 s"),
    "IDG-T12": (TokenRejected, "identity token is missing claim '{name}'"),
    "IDG-T13": (TokenWrongRequest, "identity token was issued for a different request"),
    "IDG-T14": (TokenReplayed, "identity token has already been used"),
    "IDG-V01": (IdentityNotVerified, "identity not verified under an accepted trust framework"),
    "IDG-V02": (
        IdentityNotVerified,
        "identity assurance level '{lvl}' is below the required '{min}'",
    ),
    "IDG-V03": (IdentityNotVerified, "identity verification is too old ({time})"),
    "IDG-V04": (IdentityNotVerified, "verified identity lacks '{claim}'"),
    "IDG-V05": (NameMismatch, "verified identity does not match the requested mailbox owner"),
    "IDG-C01": (CertificateUnreadable, "certificate file is too large or of unknown type"),
    "IDG-C02": (
        ContainerPassword,
        "certificate container password must be 8–64 characters",  # noqa: RUF001  (IDENTITY.md's wording)
    ),
    "IDG-C03": (ContainerRefused, "certificate container uses excessive key-derivation work"),
    "IDG-C04": (CertificateUnreadable, "certificate file is corrupted or not a certificate"),
    "IDG-C05": (
        ContainerPassword,
        "wrong password for certificate container, or the file is damaged",
    ),
    "IDG-C06": (
        ContainerRefused,
        "certificate container has no certificate or the key does not match it",
    ),
    "IDG-C07": (
        CertificateAlgorithm,
        "certificate key algorithm is not supported ({alg}); use the ESIA bridge for GOST",
    ),
    "IDG-C08": (CertificateOutOfDate, "certificate is not valid until {date}"),
    "IDG-C09": (CertificateOutOfDate, "certificate expired on {date}"),
    "IDG-C10": (CertificateUntrusted, "certificate is not issued by a trusted authority"),
    "IDG-C11": (
        RevocationUnknown,
        "revocation status cannot be checked (CRL missing/invalid/expired)",
    ),
    "IDG-C12": (CertificateRevoked, "certificate was revoked on {date} ({reason})"),
    "IDG-C13": (PossessionNotProven, "certificate possession could not be proven"),
    "IDG-C14": (KeyAlreadyBound, "this key is already registered to another account"),
    "IDG-C15": (NameMismatch, "certificate subject does not match the account"),
    "IDG-K01": (CodeInvalid, "code must be 6 digits"),
    "IDG-K02": (CodeInvalid, "code is incorrect"),
    "IDG-K03": (CodeExpired, "code has expired, request a new one"),
    "IDG-K04": (CodeUsed, "code has already been used"),
    "IDG-K05": (RequestLocked, "too many wrong attempts, request a new code"),
    "IDG-K06": (RateLimited, "please wait {n} s before requesting a new code"),
    "IDG-K07": (ConfirmationLocked, "confirmation is locked until {time}"),
}

_ECHO_MAX = 64


def _echo(value: object) -> str:
    """An attacker-supplied value made safe to echo: escaped, at most 64 characters."""
    text = str(value).encode("unicode_escape").decode("ascii")
    return text if len(text) <= _ECHO_MAX else text[:_ECHO_MAX] + "..."


def idg_error(
    idg: str,
    *,
    request_id: str | None = None,
    hint: str | None = None,
    suffix: str = "",
    details: dict[str, Any] | None = None,
    **values: object,
) -> IdentityGateError:
    """The error for check ``idg``: message ``"IDG-xxx: <message>"``, ``idg`` in the details.

    Args:
        idg: the check's code, e.g. ``IDG-T04``.
        request_id: the provisioning request concerned (every gate error names it).
        hint: what to do, if not the class's default.
        suffix: appended to the message (e.g. attempts left).
        details: extra JSON details (never secrets).
        values: the template's fields; escaped and cut to 64 characters.
    """
    cls, template = IDG_TABLE[idg]
    message = template.format(**{k: _echo(v) for k, v in values.items()}) + suffix
    return cls(f"{idg}: {message}", hint=hint, request_id=request_id, idg=idg, **(details or {}))


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
        "or pass --skip-dns-check"
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


class DeliveryAuthFailed(CheckFailed):
    """The submission server refused the login (wrong address or password); nothing was sent."""

    code = "delivery-auth-failed"
    exit_status = ExitStatus.DELIVERY_AUTH_FAILED
    default_hint = (
        "check the password (give it on stdin with --password-stdin); "
        "'mailprov mailbox show ADDRESS' shows whether the mailbox is active"
    )


class DeliveryRefused(CheckFailed):
    """The mail server could not be reached or refused the test message."""

    code = "delivery-refused"
    exit_status = ExitStatus.DELIVERY_REFUSED
    default_hint = (
        "check that Postfix and Dovecot run and listen on [check] host and the [ports]; "
        "'mailprov doctor' lists what is wrong"
    )


class DeliveryNotSeen(CheckFailed):
    """The test message was accepted but did not appear in the mailbox in time."""

    code = "delivery-not-seen"
    exit_status = ExitStatus.DELIVERY_NOT_SEEN
    default_hint = (
        "look at the Postfix queue ('postqueue -p') and the mail log; "
        "raise [check] timeout_seconds on a slow server"
    )


class DoctorFoundErrors(CheckFailed):
    """The doctor found errors."""

    code = "doctor-found-errors"
    exit_status = ExitStatus.DOCTOR_FOUND_ERRORS
    default_hint = "each finding says what to do; run 'mailprov doctor' again after fixing them"


# -- moving a mailbox between backends (services/move.py) -----------------------


class MoveRefused(MailprovError):
    """The mailbox cannot be moved as asked."""

    code = "move-refused"
    exit_status = ExitStatus.MOVE_REFUSED


class MoveFailed(MailprovError):
    """Copying a mailbox's mail between backends failed."""

    code = "move-failed"
    exit_status = ExitStatus.MOVE_FAILED
    default_hint = (
        "fix what doveadm said (both backends' doveadm servers must run and share "
        "[cluster] doveadm_password_file), then run the same 'mailprov mailbox move' again"
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
