"""HTTP statuses for the error tree: the body is the CLI's error document, the status says its kind.

The most specific class listed for an error (by its MRO) gives the status, so a new
error class inherits its parent's status until it is listed itself; anything
unlisted a caller can act on is 400.
"""

from __future__ import annotations

from mailprov import errors as e

STATUS: dict[type[e.MailprovError], int] = {
    e.NotSignedIn: 401,
    e.SignInFailed: 401,
    e.SessionStageRefused: 403,
    e.CsrfRefused: 403,
    e.NotFound: 404,
    e.AddressTaken: 409,
    e.AlreadyExists: 409,
    e.Conflict: 409,
    e.InUse: 409,
    e.WrongRequestState: 409,
    e.CodeExpired: 410,
    e.RequestExpired: 410,
    e.CodeUsed: 410,
    e.RequestLocked: 423,
    e.ConfirmationLocked: 423,
    e.RateLimited: 429,
    e.SignInLocked: 429,
    e.IdentityGateError: 422,
    e.PasswordPolicy: 422,
    e.InvalidAddress: 422,
    e.TemporaryFailure: 503,
    e.StoreUnavailable: 503,
    e.ConfigInvalid: 500,
}


def status_of(error: type[e.MailprovError]) -> int:
    """The HTTP status for an error class."""
    for cls in error.__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400
