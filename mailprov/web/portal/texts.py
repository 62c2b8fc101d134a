"""What each refusal means to the person in front of the portal, and what they can do.

The API and the CLI answer with an error document (a stable ``code``, an ``idg``
code for the identity gate's checks, the request's number, and details such as
``attempts_left``). The portal shows the same errors in the visitor's language:
:func:`explain` picks the words by the most specific key — the IDG check, then
the error code — and keeps the details a page needs. The messages here are only
marked (:func:`~mailprov.web.portal.i18n.N_`); templates translate them. An
error without words of its own falls back to a general text naming its code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mailprov.errors import IDG_TABLE
from mailprov.web.portal.i18n import N_

#: key (IDG code or error code) -> (what happened, what to do)
WORDS: dict[str, tuple[str, str]] = {
    # -- the address and the application form
    "invalid-address": (
        N_("That address cannot be used."),
        N_(
            "Use Latin letters, digits, dots and hyphens only, with no dot or hyphen at the "
            "start or the end and no two in a row."
        ),
    ),
    "unknown-domain": (
        N_("That domain is not served here."),
        N_("Choose one of the domains in the list."),
    ),
    "address-taken": (
        N_("That address is already taken."),
        N_("Choose one of the free addresses suggested below, or type another one."),
    ),
    "terms-not-accepted": (
        N_("The terms of service were not accepted."),
        N_("Read the terms and tick the box to accept them; nothing was requested."),
    ),
    "recovery-invalid": (
        N_("The recovery address is not a valid mail address."),
        N_("Give an address you can read now, other than the one you are asking for."),
    ),
    "last-contact": (
        N_("This is your last confirmed recovery contact."),
        N_("Add and confirm another recovery contact first, then remove this one."),
    ),
    "contact-not-pending": (
        N_("That recovery contact is not waiting for a code."),
        N_("Add the contact first (a code is sent to it), then type that code."),
    ),
    "already-exists": (
        N_("That is already there."),
        N_("Nothing was changed; look at the list on this page."),
    ),
    "filters-invalid": (
        N_("A field of the filters is not accepted; nothing was changed."),
        N_(
            "Check the addresses, the vacation reply's subject and text, "
            "and each rule's text and folder."
        ),
    ),
    "sieve-invalid": (
        N_("The mail server refused these filters; nothing was changed."),
        N_("Check the rules' texts and folders, then save again."),
    ),
    "sieve-too-large": (
        N_("These filters are larger than this site allows; nothing was changed."),
        N_("Shorten the vacation reply or remove some rules."),
    ),
    "filters-not-installed": (
        N_("The filters could not be written to the mail server; nothing was changed."),
        N_("Try again later; if it keeps failing, tell your administrator."),
    ),
    "recovery-unreachable": (
        N_("The recovery address cannot be reached."),
        N_("Check the recovery address, or ask for a new code later."),
    ),
    "domain-not-verified": (
        N_("The ownership of this domain has not been proven yet."),
        N_(
            "A corporate mailbox needs a domain whose owner has been proven. Ask your "
            "organisation's administrator to prove it, or apply for a personal mailbox."
        ),
    ),
    "domain-handle-required": (
        N_("Applications at this domain are opened only by whoever proved its ownership here."),
        N_(
            "Apply from the browser that proved the domain, or ask the administrator of this "
            "site to open the domain to every applicant; nothing was requested."
        ),
    ),
    "domain-proof-taken": (
        N_("This domain is served here already, or someone else has started proving it."),
        N_(
            "A proof can be seen and checked only from the browser that started it. Use that "
            "browser, or ask the administrator of this site; nothing was changed."
        ),
    ),
    "invalid-value": (
        N_("A value in the form was not accepted."),
        N_("Check the fields marked below and send the form again."),
    ),
    "malformed-request": (
        N_("A value in the form was not accepted."),
        N_("Check the fields marked below and send the form again."),
    ),
    # -- following an application
    "request-unknown": (
        N_("No application has that number and key."),
        N_(
            "Check both: the number looks like ABCD-EFGH, and the key is the long text you "
            "were shown when you applied."
        ),
    ),
    "request-expired": (
        N_("This application has expired."),
        N_("Nothing was created. Apply again if you still want a mailbox."),
    ),
    "request-state": (
        N_("This step is not possible in the application's present state."),
        N_("See the application's state below and what to do next."),
    ),
    # -- proving who you are
    "token-rejected": (
        N_("The identity provider's answer was not accepted."),
        N_("Sign in with your identity provider again; if it happens again, tell support."),
    ),
    "IDG-T09": (
        N_("The identity provider's answer has expired."),
        N_("Sign in with your identity provider again: its answer is good for a few minutes."),
    ),
    "token-time-invalid": (
        N_("The identity provider's answer is outside its validity period."),
        N_("Check your computer's clock, then sign in with your identity provider again."),
    ),
    "token-wrong-request": (
        N_("The identity provider's answer was made for another application."),
        N_("Sign in with your identity provider again from this application's page."),
    ),
    "token-replayed": (
        N_("The identity provider's answer has already been used."),
        N_("Sign in with your identity provider again to get a fresh one."),
    ),
    "identity-not-verified": (
        N_("Your identity is not verified."),
        N_(
            "Your account at the identity provider must be fully verified (identity "
            "documents checked) before you can apply. Finish the verification there, then "
            "sign in again."
        ),
    ),
    "IDG-V02": (
        N_("Your identity is verified at too low a level."),
        N_(
            "The identity provider has not verified your identity well enough for a mailbox "
            "(for example, the documents were not checked in person). Raise the level of "
            "your account there, then sign in again."
        ),
    ),
    "IDG-V03": (
        N_("Your identity was verified too long ago."),
        N_("Renew the verification of your account at the identity provider, then sign in again."),
    ),
    "name-mismatch": (
        N_("The verified name does not match the name in the application."),
        N_(
            "The application was rejected and nothing was created. Apply again and give your "
            "name exactly as your identity documents show it, or leave the name empty."
        ),
    ),
    "oidc-provider-refused": (
        N_("The identity provider refused the sign-in."),
        N_("Sign in with your identity provider again, and allow it to share your data."),
    ),
    "oidc-state-invalid": (
        N_("This sign-in at the identity provider is not known here."),
        N_("Start again from your application's page, in the same browser."),
    ),
    "oidc-state-expired": (
        N_("The sign-in at the identity provider took too long."),
        N_("Start again from your application's page."),
    ),
    "oidc-state-used": (
        N_("This sign-in at the identity provider was already used."),
        N_("Start again from your application's page."),
    ),
    "oidc-unavailable": (
        N_("The identity provider cannot be reached right now."),
        N_("This is not your fault. Try again later, or use another way to prove who you are."),
    ),
    "certificate-unreadable": (
        N_("The certificate cannot be read."),
        N_(
            "Send the certificate itself (a .pem, .cer or .crt file), not a .p12 container: "
            "your private key must stay on your computer."
        ),
    ),
    "container-password": (
        N_("The certificate container's password is wrong, or the file is damaged."),
        N_(
            "Here, send the certificate itself (a .pem, .cer or .crt file), not a .p12 "
            "container: your private key must stay on your computer."
        ),
    ),
    "container-refused": (
        N_("The certificate container cannot be used."),
        N_(
            "Here, send the certificate itself (a .pem, .cer or .crt file), not a .p12 "
            "container: your private key must stay on your computer."
        ),
    ),
    "certificate-algorithm": (
        N_("The certificate's key type is not supported."),
        N_("Use a certificate with an RSA (2048 bits or more), P-256, P-384 or Ed25519 key."),
    ),
    "certificate-out-of-date": (
        N_("The certificate is not valid now."),
        N_("Use a certificate that is valid today."),
    ),
    "certificate-untrusted": (
        N_("The certificate was not issued by an authority this service trusts."),
        N_("Use a certificate from an accepted authority, or sign in with the identity provider."),
    ),
    "revocation-unknown": (
        N_("The certificate's revocation status cannot be checked right now."),
        N_("This is not your fault. Try again later, or sign in with the identity provider."),
    ),
    "certificate-revoked": (
        N_("The certificate has been revoked."),
        N_("Use another certificate, or sign in with the identity provider."),
    ),
    "possession-not-proven": (
        N_("The signature does not prove that you hold the certificate's key."),
        N_(
            "Ask for a new challenge, sign exactly that text with the certificate's key, and "
            "send the new signature within five minutes."
        ),
    ),
    "key-already-bound": (
        N_("This certificate's key is already registered to another mailbox."),
        N_("Use another certificate, or sign in with the identity provider."),
    ),
    # -- the code
    "code-invalid": (
        N_("The code is incorrect."),
        N_("Type the six digits from the latest message exactly."),
    ),
    "IDG-K01": (
        N_("The code must be six digits."),
        N_("Type the six digits from the latest message."),
    ),
    "code-expired": (
        N_("The code has expired."),
        N_("Ask for a new code and type it within ten minutes."),
    ),
    "code-used": (
        N_("This code has already been used."),
        N_(
            "The application is complete. Sign in with your new address; the temporary "
            "password was shown only once."
        ),
    ),
    "request-locked": (
        N_("Too many wrong codes: the application is locked."),
        N_("Ask for a new code: it unlocks the application."),
    ),
    "rate-limited": (
        N_("A new code cannot be sent yet."),
        N_("Wait a minute before asking again; at most five codes are sent in an hour."),
    ),
    "client-rate-limited": (
        N_("Too many applications or domain checks were started from your network."),
        N_(
            "Wait up to an hour, then try again. Applications already opened go on by "
            "their numbers."
        ),
    ),
    "confirmation-locked": (
        N_("Confirmation is locked for a while."),
        N_("Wait, then ask for a new code."),
    ),
    # -- signing in and passwords
    "sign-in-failed": (
        N_("The address or the password is wrong."),
        N_("Check both and try again. The address is the whole mail address, name@domain."),
    ),
    "password-policy": (
        N_("That password cannot be used."),
        N_(
            "Choose a new password of at least 8 characters with upper and lower case letters, "
            "digits and other characters, not a common one, different from the current one."
        ),
    ),
    "password-too-long": (
        N_("That password is too long."),
        N_("Choose a shorter password."),
    ),
    "passwords-differ": (
        N_("The two new passwords are not the same."),
        N_("Type the same new password in both fields."),
    ),
    # -- forgot password
    "reset-ended": (
        N_("This password reset has ended."),
        N_("It was used, replaced by a newer one, or took too long. Start again."),
    ),
    "reset-gone": (
        N_("This password reset is no longer known here."),
        N_("Start again: type your address and choose how to prove it is yours."),
    ),
    "reset-route-disabled": (
        N_("That way of resetting the password is not offered here."),
        N_("Choose the other way, or ask the administrator for a new temporary password."),
    ),
    "identity-mismatch": (
        N_("The identity you signed in with is not the one this mailbox was created for."),
        N_(
            "Sign in at the identity provider with the account you used when you got the "
            "mailbox, or reset the password with a code to your recovery contacts."
        ),
    ),
    "reset-code-used": (
        N_("This code has already been used."),
        N_("Start again to get a new code."),
    ),
    "reset-code-locked": (
        N_("Too many wrong codes: this code no longer works."),
        N_("Start again to get a new code."),
    ),
    "reset-sign-in-lost": (
        N_("This sign-in at the identity provider cannot be used here."),
        N_("It took too long, was used already, or was started in another browser. Start again."),
    ),
    "sign-in-locked": (
        N_("Signing in is locked for a while after too many failed attempts."),
        N_(
            "Wait a quarter of an hour and try again, or reset your password. The owner's "
            "recovery contacts were told."
        ),
    ),
    "two-factor-code-invalid": (
        N_("The code is wrong."),
        N_("Type the six digits your authenticator app shows now, or one of your recovery codes."),
    ),
    "two-factor-code-expired": (
        N_("That code has expired."),
        N_("Type the code your authenticator app shows now."),
    ),
    "two-factor-code-reused": (
        N_("That code was already used."),
        N_("Wait for the next code in your authenticator app."),
    ),
    "two-factor-locked": (
        N_("Too many wrong codes: the second step is locked for a while."),
        N_("Wait, then sign in again. Not you? Change your password when you are in."),
    ),
    "two-factor-state": (
        N_("Two-factor authentication is not in a state that allows this."),
        N_("Sign in again."),
    ),
    "not-signed-in": (
        N_("You are not signed in, or your session has ended."),
        N_("Sign in again."),
    ),
    "session-stage": (
        N_("Finish signing in first."),
        N_("Set your own password first; then the rest of your account opens."),
    ),
    # -- the portal itself
    "csrf-refused": (
        N_("This form was not accepted: it is too old or did not come from this site."),
        N_(
            "Nothing was changed. Open the page again from this site and send the form once "
            "more. Cookies must be allowed for this site."
        ),
    ),
    "credentials-gone": (
        N_("The temporary password was shown once and cannot be shown again."),
        N_(
            "If you did not note it, wait until it expires and apply again, or ask the "
            "administrator for a new temporary password. Your application number is below."
        ),
    ),
    "not-found": (
        N_("There is no such page."),
        N_("Check the address, or start again from the home page."),
    ),
    "method-not-allowed": (
        N_("This page cannot be used that way."),
        N_("Start again from the home page."),
    ),
    "body-too-large": (
        N_("What you sent is too large."),
        N_("Send smaller files: a certificate is a few kilobytes."),
    ),
    "temporary-failure": (
        N_("A server did not answer; nothing was changed."),
        N_("Try again in a few minutes."),
    ),
    "store-unavailable": (
        N_("The service is unavailable for a moment."),
        N_("Try again in a few minutes."),
    ),
    "trust-invalid": (
        N_("The service's identity settings are broken."),
        N_("This is not your fault. Tell support, naming the application number."),
    ),
    "config-invalid": (
        N_("The service's settings are broken."),
        N_("This is not your fault. Tell support, naming the application number."),
    ),
}

GENERAL = (
    N_("Something went wrong."),
    N_("Try again. If it happens again, tell support and give them the code shown below."),
)

#: Details of an error document a page may show (no secrets are ever among them).
SHOWN_DETAILS = ("attempts_left", "suggestions", "idg", "field", "address")


@dataclass(frozen=True)
class Explanation:
    """An error as a page shows it: untranslated words, and the details they refer to."""

    code: str
    title: str
    what_to_do: str
    request_id: str | None = None
    idg: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """What a flash cookie carries (no words: they are looked up again in the language)."""
        data: dict[str, Any] = {"code": self.code, "details": self.details}
        if self.request_id:
            data["request_id"] = self.request_id
        if self.idg:
            data["idg"] = self.idg
        return data


def explain(document: dict[str, Any]) -> Explanation:
    """Words for an error document's ``error`` object (or the flash cookie's copy of it)."""
    code = str(document.get("code") or "error")
    idg = document.get("idg") or document.get("details", {}).get("idg")
    keys = [str(idg)] if idg else []
    if idg in IDG_TABLE:  # an IDG check without words of its own: its error class's words
        keys.append(IDG_TABLE[str(idg)][0].code)
    keys.append(code)
    title, what = next((WORDS[k] for k in keys if k in WORDS), GENERAL)
    details = {k: document[k] for k in SHOWN_DETAILS if k in document}
    details.update(
        {k: v for k, v in dict(document.get("details") or {}).items() if k in SHOWN_DETAILS}
    )
    if isinstance(details.get("suggestions"), list):
        details["suggestions"] = [str(s)[:254] for s in details["suggestions"][:8]]
    request_id = document.get("request_id")
    return Explanation(
        code,
        title,
        what,
        str(request_id) if request_id else None,
        str(idg) if idg else None,
        details,
    )


#: A request's state in plain words: (name, what it means).
STATES: dict[str, tuple[str, str]] = {
    "open": (
        N_("Waiting for proof of identity"),
        N_("The application is open. Prove who you are to go on."),
    ),
    "identity-verified": (
        N_("Identity verified; waiting for the code"),
        N_("Your identity is verified. A code was sent to your recovery contact."),
    ),
    "locked": (
        N_("Locked after wrong codes"),
        N_("Too many wrong codes were typed. A new code unlocks the application."),
    ),
    "confirmed": (
        N_("Confirmed; the mailbox is being created"),
        N_("The code was right. The mailbox is being created; look again in a moment."),
    ),
    "provisioned": (
        N_("Complete: the mailbox exists"),
        N_("Your mailbox was created. Sign in and set your own password."),
    ),
    "rejected": (
        N_("Rejected"),
        N_("The application was refused and nothing was created."),
    ),
    "expired": (
        N_("Expired"),
        N_("The application was not finished in time and nothing was created."),
    ),
    "cancelled": (
        N_("Cancelled"),
        N_("The application was cancelled and nothing was created."),
    ),
}

#: What to do next, by the API's ``next.action``.
NEXT: dict[str, str] = {
    "prove-identity": N_("Prove who you are with your identity provider or a certificate."),
    "confirm": N_("Type the code that was sent to your recovery contact."),
    "resend": N_("Ask for a new code; it unlocks the application."),
    "wait": N_("Wait a moment and look again."),
    "sign-in": N_("Sign in with your new address and set your own password."),
    "open-new": N_("Apply again if you still want a mailbox."),
}

#: The history's events (the audit log's request.* actions) in plain words.
EVENTS: dict[str, str] = {
    "open": N_("Application opened"),
    "verify": N_("Identity verified"),
    "verify-failed": N_("Proof of identity refused"),
    "challenge": N_("New certificate challenge"),
    "challenge-failed": N_("Certificate challenge refused"),
    "resend": N_("New code sent"),
    "resend-failed": N_("New code refused"),
    "code-undelivered": N_("The code could not be delivered"),
    "confirm": N_("Code accepted"),
    "confirm-failed": N_("Wrong code"),
    "lock": N_("Locked after wrong codes"),
    "unlock": N_("Unlocked"),
    "unlock-account": N_("Unlocked"),
    "provision": N_("Mailbox created"),
    "reject": N_("Rejected"),
    "expire": N_("Expired"),
    "cancel": N_("Cancelled"),
}

#: The owner's security events (the audit log's owner.* actions) in plain words.
SECURITY_EVENTS: dict[str, str] = {
    "sign-in": N_("Signed in"),
    "sign-out": N_("Signed out"),
    "password-changed": N_("Password changed"),
    "password-reset": N_("Password reset"),
    "2fa-enabled": N_("Two-factor authentication turned on"),
    "2fa-disabled": N_("Two-factor authentication turned off"),
    "app-password-created": N_("App password created"),
    "app-password-revoked": N_("App password revoked"),
    "contact-added": N_("Recovery contact added"),
    "contact-removed": N_("Recovery contact removed"),
    "locked": N_("Sign-in locked after failed attempts"),
}
