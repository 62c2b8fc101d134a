"""``mailprov dns records|check``: what a domain needs in DNS, and whether DNS has it."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailprov.errors import CertificateInvalid
from mailprov.rules.dnscheck import Advice, published_dmarc_policy
from mailprov.rules.dnscheck import forwarding_advice as rules_forwarding_advice
from mailprov.rules.dnsrecords import DkimPublication, RecordInput, RecordSet, TlsaKey, build
from mailprov.services.accounts import domain_names, get_domain, list_aliases
from mailprov.services.dkim import published
from mailprov.services.filters import all_forwards

if TYPE_CHECKING:
    from mailprov.rules.dnscheck import CheckResult
    from mailprov.settings import SiteConfig
    from mailprov.store import Store
    from mailprov.system.dns import CheckPlan


def spki_sha256(path: Path, *, setting: str) -> str:
    """The SHA-256 of the SubjectPublicKeyInfo in a PEM certificate (or public key) file.

    A chain file is fine: the first certificate is the server's.

    Raises:
        CertificateInvalid: the file is missing, unreadable, or holds no certificate.
    """
    from cryptography import x509  # noqa: PLC0415  (lazy: a heavy import only this path needs)
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415  (lazy: a heavy import only this path needs)

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CertificateInvalid(f"cannot read {setting} {path}: {exc.strerror}") from None
    public_key: Any = None
    try:
        public_key = x509.load_pem_x509_certificate(data).public_key()
    except ValueError:
        if b"-----BEGIN PUBLIC KEY-----" in data:
            try:
                public_key = serialization.load_pem_public_key(data)
            except ValueError:
                public_key = None
    if public_key is None:
        raise CertificateInvalid(f"{setting} {path} is not a PEM certificate")
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def record_set(store: Store, settings: SiteConfig, domain: str, *, tlsa: bool = True) -> RecordSet:
    """Every record ``domain`` (which must be in the store) needs.

    Args:
        tlsa: include DANE TLSA records (reads [tls] cert_file and [dns] tlsa_next_file).

    Raises:
        NotFound: the domain is not in the store.
        CertificateInvalid: a certificate file is not a certificate.
        DkimKeyUnusable: a DKIM key file is unsafe or unreadable.
    """
    name = get_domain(store, domain).name
    dns = settings.dns
    tlsa_keys: list[TlsaKey] = []
    if tlsa:
        cert = settings.resolve_path(settings.tls.cert_file)
        tlsa_keys.append(TlsaKey("current", spki_sha256(cert, setting="[tls] cert_file")))
        if dns.tlsa_next_file:
            nxt = settings.resolve_path(dns.tlsa_next_file)
            digest = spki_sha256(nxt, setting="[dns] tlsa_next_file")
            if digest != tlsa_keys[0].sha256_hex:
                tlsa_keys.append(TlsaKey("next", digest))
    dkim_keys = [
        DkimPublication(k.selector, k.record or "", k.status)
        for k in published(store, settings, name)
    ]
    ports = settings.ports
    inp = RecordInput(
        domain=name,
        hostname=settings.site.hostname,
        ttl=dns.ttl,
        ipv4=list(dns.ipv4),
        ipv6=list(dns.ipv6),
        mx_priority=dns.mx_priority,
        spf=dns.spf,
        dmarc_policy=dns.dmarc_policy,
        dmarc_rua=dns.dmarc_rua,
        dmarc_ruf=dns.dmarc_ruf,
        mta_sts_mode=dns.mta_sts_mode,
        mta_sts_max_age=dns.mta_sts_max_age,
        mta_sts_mx=list(dns.mta_sts_mx),
        tls_rpt_rua=dns.tls_rpt_rua,
        web_host=dns.web_host,
        ports={
            "smtp": ports.smtp,
            "submission": ports.submission,
            "submissions": ports.submissions,
            "imaps": ports.imaps,
            "pop3s": ports.pop3s,
        },
        dkim=dkim_keys,
        tlsa=tlsa_keys,
        served_domains=domain_names(store),
        web_https_port=dns.web_https_port,
    )
    return build(inp)


def mx_patterns(settings: SiteConfig) -> list[str]:
    """The MTA-STS policy's mx patterns."""
    return [settings.site.hostname, *settings.dns.mta_sts_mx]


def check(
    store: Store, settings: SiteConfig, domain: str, plan: CheckPlan, *, tlsa: bool = True
) -> list[CheckResult]:
    """Check every expected record of ``domain`` against DNS, and the mail host's PTRs."""
    rs = record_set(store, settings, domain, tlsa=tlsa)
    ptr = [("ipv4", ip) for ip in settings.dns.ipv4] + [("ipv6", ip) for ip in settings.dns.ipv6]
    return plan.run(
        rs.records,
        domain=rs.domain,
        mx_patterns=mx_patterns(settings),
        ptr=ptr,
        hostname=settings.site.hostname,
    )


def forwarded_outside(store: Store) -> list[str]:
    """Where the site forwards mail outside its own domains, as the user would name it:
    ``alias -> destination`` for active aliases, ``mailbox -> address`` for owners'
    forwarding (``mailbox -> (its own Sieve script)`` for a script that redirects)."""
    local = set(domain_names(store))

    def outside(address: str) -> bool:
        return "@" not in address or address.rpartition("@")[2].lower() not in local

    out = [
        f"{alias.address} -> {dest}"
        for alias in list_aliases(store)
        if alias.active
        for dest in alias.destinations
        if outside(dest)
    ]
    for mailbox, targets in all_forwards(store).items():
        out += [
            f"{mailbox} -> {t}" if _is_address(t) else f"{mailbox} -> (its own Sieve script)"
            for t in targets
            if outside(t)
        ]
    return out


def _is_address(text: str) -> bool:
    """A forwarding form's address (an owner's own script is the whole script text)."""
    return text.count("@") == 1 and not any(c.isspace() or c in "\"';{}" for c in text)


def forwarding_advice(
    store: Store, settings: SiteConfig, domain: str, results: list[CheckResult]
) -> list[Advice]:
    """Warnings that DNS's answers alone do not fail (see
    :func:`mailprov.rules.dnscheck.forwarding_advice`)."""
    arc = settings.rspamd.enabled and settings.rspamd.arc_seal
    return rules_forwarding_advice(
        domain, published_dmarc_policy(results), forwarded_outside(store), arc_seal=arc
    )
