"""The TLS cipher profile every rendered listener uses (one home for Postfix and Dovecot).

Mozilla's "intermediate" server-side TLS profile (TLS 1.2 and 1.3, AEAD suites only),
made stricter in two documented ways:

* **No DHE.** Every TLS 1.2 client also speaks ECDHE, so finite-field DH adds no client
  and only a parameter file to manage (and 1024-bit groups to get wrong). The one client
  family Mozilla keeps DHE for is Windows 7's SChannel with an *RSA* certificate (ECDHE
  only with CBC there); an ECDSA certificate (``tls self-signed`` makes one; certbot's
  default since 2.0) serves it with ECDHE-ECDSA-AES-GCM.
* **Server order.** The list is all AEAD, so the order barely matters, but auditors
  (testssl.sh among them) flag a server that lets the client choose; the server picks
  its own first match (``tls_preempt_cipherlist``, ``ssl_prefer_server_ciphers``).

TLS 1.3 suites are OpenSSL's defaults, all AEAD. The lists are OpenSSL cipher strings.
"""

from __future__ import annotations

#: Login ports (587, 465, IMAP/POP3 with STARTTLS, 993, 995): ECDHE key exchange, AEAD only.
LOGIN_CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    )
)

#: Port 25 (opportunistic STARTTLS between servers): the login list first, then ECDHE
#: with AES-CBC as a last resort. A sending server whose handshake fails delivers in
#: plaintext instead (RFC 7435, RFC 3207): refusing CBC there would lower protection, not
#: raise it. Still never anonymous, unencrypted, static-RSA, 3DES or RC4.
MX_CIPHERS = ":".join(
    (
        LOGIN_CIPHERS,
        "ECDHE-ECDSA-AES128-SHA256",
        "ECDHE-RSA-AES128-SHA256",
        "ECDHE-ECDSA-AES256-SHA384",
        "ECDHE-RSA-AES256-SHA384",
        "ECDHE-ECDSA-AES128-SHA",
        "ECDHE-RSA-AES128-SHA",
        "ECDHE-ECDSA-AES256-SHA",
        "ECDHE-RSA-AES256-SHA",
    )
)


def tls_profile() -> dict[str, str]:
    """The template values for the cipher lists (``tls.login_ciphers``, ``tls.mx_ciphers``)."""
    return {"login_ciphers": LOGIN_CIPHERS, "mx_ciphers": MX_CIPHERS}
