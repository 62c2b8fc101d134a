"""HTTP statuses for the error tree: the body is the CLI's error document, the status says its kind.

The most specific class listed for an error (by its MRO) gives the status, so a new
error class inherits its parent's status until it is listed itself; anything
unlisted a caller can act on is 400.
"""

from __future__ import annotations

from mailprov import errors as e

STATUS: dict[type[e.MailprovError], int] = {
    e.NotSignedIn: 401,
    e.AdminTokenRefused: 401,
    e.StateInvalid: 422,
    e.ScopeRefused: 403,
    e.SignInFailed: 401,
    e.SessionStageRefused: 403,
    e.CsrfRefused: 403,
    e.ResetRouteDisabled: 403,
    e.IdentityMismatch: 403,
    e.NotFound: 404,
    e.AddressTaken: 409,
    e.AlreadyExists: 409,
    e.Conflict: 409,
    e.InUse: 409,
    e.LastRecoveryContact: 409,
    e.ContactNotPending: 409,
    e.WrongRequestState: 409,
    e.CodeExpired: 410,
    e.RequestExpired: 410,
    e.CodeUsed: 410,
    e.ResetEnded: 410,
    e.RequestLocked: 423,
    e.ConfirmationLocked: 423,
    e.RateLimited: 429,
    e.SignInLocked: 429,
    e.IdentityGateError: 422,
    # The gate's refusals are 422 (the proof or code was understood and refused) except
    # where another status says more: a key or token already used elsewhere conflicts (409);
    # a revocation status the gate cannot check now is not the requester's fault (503,
    # retry once the administrator has a fresh CRL); broken trust settings are the
    # server's (500). A wrong handle answers as an unknown number (404).
    e.KeyAlreadyBound: 409,
    e.TokenReplayed: 409,
    e.RevocationUnknown: 503,
    e.TrustInvalid: 500,
    e.RequestUnknown: 404,
    # A request at a domain proven through the portal, without that proof's handle.
    e.DomainHandleRequired: 403,
    e.PasswordPolicy: 422,
    e.MalformedRequest: 400,
    e.InvalidValue: 422,
    e.InvalidAddress: 422,
    e.TemporaryFailure: 503,
    e.StoreUnavailable: 503,
    e.ConfigInvalid: 500,
    # two-factor authentication
    e.TwoFactorCodeInvalid: 422,
    e.TwoFactorCodeExpired: 410,
    e.TwoFactorCodeReused: 410,
    e.TwoFactorLocked: 423,
    e.TwoFactorState: 409,
    e.SieveInvalid: 422,
    e.SieveTooLarge: 422,
    e.FiltersInvalid: 422,
    e.FiltersNotInstalled: 503,
    # Identity by redirect: a sign-in this browser cannot use is unknown (404: unknown, or
    # another browser's, the same answer), gone when stale, a conflict when used; a proof
    # the provider refused is refused like the gate's (422); a provider we cannot reach,
    # or no [oidc] at all, is 503.
    e.OidcStateInvalid: 404,
    e.OidcStateExpired: 410,
    e.OidcStateUsed: 409,
    e.OidcProviderRefused: 422,
    e.OidcUnavailable: 503,
}


def status_of(error: type[e.MailprovError]) -> int:
    """The HTTP status for an error class."""
    for cls in error.__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400
