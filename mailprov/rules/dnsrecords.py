"""The DNS records a mail domain needs, computed from values; zone-file and JSON forms.

Pure: no I/O. The caller (``services.dns``) reads the store, the DKIM key folder
and the certificate, and passes plain values in. Every name is absolute (ends
with a dot) and in A-labels, so an IDN domain's records are what DNS serves.

Each record carries the stable ID of the check that ``dns check`` runs for it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

#: SRV records of RFC 6186 / RFC 8314: (label, port name or None = "not offered", priority).
SRV_SERVICES: tuple[tuple[str, str | None, int], ...] = (
    ("_submissions._tcp", "submissions", 0),
    ("_submission._tcp", "submission", 10),
    ("_imaps._tcp", "imaps", 0),
    ("_pop3s._tcp", "pop3s", 10),
    # Cleartext IMAP and POP3 are not offered: RFC 6186 section 3.4 says "0 0 0 ." for that.
    ("_imap._tcp", None, 0),
    ("_pop3._tcp", None, 0),
)
_TXT_CHUNK = 255


@dataclass(frozen=True)
class Record:
    """One DNS record: absolute name, type, presentation value (TXT: the joined text)."""

    name: str
    rtype: str
    value: str
    check: str
    ttl: int
    note: str = ""
    #: The zone the record belongs in, when it is known to be another domain's zone.
    zone: str = ""

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "name": self.name,
            "type": self.rtype,
            "ttl": self.ttl,
            "value": self.value,
            "check": self.check,
            "note": self.note,
            "zone": self.zone or None,
        }


@dataclass(frozen=True)
class DkimPublication:
    """A DKIM selector whose record must be in DNS, and its state (next or active)."""

    selector: str
    record: str
    status: str


@dataclass(frozen=True)
class TlsaKey:
    """A TLSA ``3 1 1`` digest and which key it is (``current`` or ``next``)."""

    role: str
    sha256_hex: str


@dataclass(frozen=True)
class RecordInput:
    """Everything the records are computed from."""

    domain: str
    hostname: str
    ttl: int
    ipv4: Sequence[str]
    ipv6: Sequence[str]
    mx_priority: int
    spf: str
    dmarc_policy: str
    dmarc_rua: str
    dmarc_ruf: str
    mta_sts_mode: str
    mta_sts_max_age: int
    mta_sts_mx: Sequence[str]
    tls_rpt_rua: str
    web_host: str
    ports: dict[str, int]
    dkim: Sequence[DkimPublication] = ()
    tlsa: Sequence[TlsaKey] = ()
    #: Every domain served here (A-labels): a report domain among them authorizes the others.
    served_domains: Sequence[str] = ()
    #: The port the web host serves HTTPS on (the _autodiscover._tcp SRV target port).
    web_https_port: int = 443


@dataclass(frozen=True)
class RecordSet:
    """The records of one domain plus the MTA-STS policy file they refer to."""

    domain: str
    records: tuple[Record, ...]
    mta_sts_policy: str
    mta_sts_url: str
    policy_id: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "domain": self.domain,
            "records": [r.to_json() for r in self.records],
            "mta_sts_policy": {
                "url": self.mta_sts_url,
                "text": self.mta_sts_policy,
                "id": self.policy_id,
            },
        }


def absolute(name: str) -> str:
    """``name`` with exactly one trailing dot."""
    return name.rstrip(".") + "."


def mta_sts_policy(inp: RecordInput) -> str:
    """The RFC 8461 policy file text (served at https://mta-sts.DOMAIN/.well-known/mta-sts.txt)."""
    mx_lines = [f"mx: {mx.rstrip('.')}" for mx in (inp.hostname, *inp.mta_sts_mx)]
    lines = [
        "version: STSv1",
        f"mode: {inp.mta_sts_mode}",
        *dict.fromkeys(mx_lines),
        f"max_age: {inp.mta_sts_max_age}",
    ]
    return "\n".join(lines) + "\n"


def policy_id(policy: str) -> str:
    """An MTA-STS policy id (1-32 alphanumerics) that changes whenever the policy text does."""
    return hashlib.sha256(policy.encode("utf-8")).hexdigest()[:20]


def dmarc_value(inp: RecordInput) -> str:
    """The DMARC TXT value."""
    parts = ["v=DMARC1", f"p={inp.dmarc_policy}"]
    if inp.dmarc_rua:
        parts.append(f"rua={inp.dmarc_rua}")
    if inp.dmarc_ruf:
        parts.append(f"ruf={inp.dmarc_ruf}")
    return "; ".join(parts)


def report_domains(*uri_lists: str) -> list[str]:
    """The domains of the ``mailto:`` URIs in DMARC ``rua``/``ruf`` lists, in order, once each."""
    out: dict[str, None] = {}
    for uris in uri_lists:
        for raw in uris.split(","):
            uri = raw.strip()
            if uri.lower().startswith("mailto:"):
                address = uri[len("mailto:") :].partition("!")[0]
                domain = address.rpartition("@")[2].rstrip(".").lower()
                if domain:
                    out[domain] = None
    return list(out)


def needs_report_auth(domain: str, report_domain: str) -> bool:
    """Must ``report_domain`` authorize reports about ``domain`` (RFC 7489 section 7.1)?

    Reports to the domain itself or to a name below it need no authorization. Without
    a public suffix list the organizational domains cannot be compared exactly, so
    anything else is authorized: an authorization record no one asks for is harmless.
    """
    domain, report = domain.rstrip(".").lower(), report_domain.rstrip(".").lower()
    return not (report == domain or report.endswith("." + domain))


def report_auth_records(inp: RecordInput) -> list[Record]:
    """The DMARC external report authorizations ``inp.domain`` is part of.

    ``DOMAIN._report._dmarc.REPORTDOMAIN TXT "v=DMARC1"`` for each report domain of
    ``dmarc_rua``/``dmarc_ruf`` that is not this domain (they belong in the report
    domain's zone), and, when this domain is a report domain, one for each other
    domain served here (they belong in this zone).
    """
    reports = report_domains(inp.dmarc_rua, inp.dmarc_ruf)
    me = inp.domain.rstrip(".").lower()
    pairs = [(me, r) for r in reports if needs_report_auth(me, r)]
    if me in reports:
        pairs += [
            (d.rstrip(".").lower(), me) for d in inp.served_domains if needs_report_auth(d, me)
        ]
    return [
        Record(
            f"{domain}._report._dmarc.{absolute(report)}",
            "TXT",
            "v=DMARC1",
            "dns.dmarc.report_auth",
            inp.ttl,
            f"DMARC: {report} accepts reports about {domain}",
            absolute(report),
        )
        for domain, report in dict.fromkeys(pairs)
    ]


def build(inp: RecordInput) -> RecordSet:
    """Every record ``inp.domain`` needs, in the order a zone file shows them."""
    domain = absolute(inp.domain)
    host = absolute(inp.hostname)
    web = absolute(inp.web_host or inp.hostname)
    ttl = inp.ttl
    out: list[Record] = [
        Record(
            domain,
            "MX",
            f"{inp.mx_priority} {host}",
            "dns.mx",
            ttl,
            "mail for the domain goes here",
        ),
    ]
    out += [Record(host, "A", ip, "dns.host.ipv4", ttl, "the mail host, IPv4") for ip in inp.ipv4]
    out += [
        Record(host, "AAAA", ip, "dns.host.ipv6", ttl, "the mail host, IPv6") for ip in inp.ipv6
    ]
    out.append(Record(domain, "TXT", inp.spf, "dns.spf", ttl, "SPF: who may send for the domain"))
    for key in inp.dkim:
        note = (
            "DKIM key in use" if key.status == "active" else "DKIM key to publish before activating"
        )
        out.append(
            Record(
                f"{key.selector}._domainkey.{domain}",
                "TXT",
                key.record,
                "dns.dkim.selector",
                ttl,
                note,
            )
        )
    out.append(
        Record(f"_dmarc.{domain}", "TXT", dmarc_value(inp), "dns.dmarc", ttl, "DMARC policy")
    )
    out += report_auth_records(inp)
    policy = mta_sts_policy(inp)
    pid = policy_id(policy)
    out += [
        Record(
            f"_mta-sts.{domain}",
            "TXT",
            f"v=STSv1; id={pid}",
            "dns.mta_sts.txt",
            ttl,
            "MTA-STS: the id changes when the policy file changes",
        ),
        Record(
            f"mta-sts.{domain}",
            "CNAME",
            web,
            "dns.mta_sts.host",
            ttl,
            "serves https://mta-sts.DOMAIN/.well-known/mta-sts.txt",
        ),
        Record(
            f"_smtp._tls.{domain}",
            "TXT",
            f"v=TLSRPTv1; rua={inp.tls_rpt_rua or 'mailto:postmaster@' + inp.domain}",
            "dns.tls_rpt",
            ttl,
            "TLS-RPT: where TLS failure reports go",
        ),
    ]
    for tlsa in inp.tlsa:
        out.append(
            Record(
                f"_{inp.ports['smtp']}._tcp.{host}",
                "TLSA",
                f"3 1 1 {tlsa.sha256_hex}",
                f"dns.tlsa.{tlsa.role}",
                ttl,
                "DANE: the certificate's public key"
                if tlsa.role == "current"
                else "DANE: the next key, published before the rollover",
            )
        )
    for label, port_name, priority in SRV_SERVICES:
        value = f"{priority} 1 {inp.ports[port_name]} {host}" if port_name else "0 0 0 ."
        check = "dns.srv." + label.split(".")[0].lstrip("_")
        out.append(
            Record(
                f"{label}.{domain}",
                "SRV",
                value,
                check,
                ttl,
                "RFC 6186/8314 client discovery" if port_name else "not offered",
            )
        )
    out += [
        Record(
            f"autoconfig.{domain}", "CNAME", web, "dns.autoconfig", ttl, "Thunderbird autoconfig"
        ),
        Record(
            f"autodiscover.{domain}", "CNAME", web, "dns.autodiscover", ttl, "Outlook autodiscover"
        ),
        Record(
            f"_autodiscover._tcp.{domain}",
            "SRV",
            f"0 1 {inp.web_https_port} {web}",
            "dns.srv.autodiscover",
            ttl,
            "Outlook autodiscover",
        ),
    ]
    url = f"https://mta-sts.{inp.domain}/.well-known/mta-sts.txt"
    return RecordSet(inp.domain, tuple(out), policy, url, pid)


def in_zone(name: str, zone: str) -> bool:
    """True if absolute ``name`` is ``zone`` or below it."""
    name, zone = name.lower(), absolute(zone).lower()
    return name == zone or name.endswith("." + zone)


def quote_txt(text: str) -> str:
    """A TXT value as zone-file strings of at most 255 bytes each."""
    escaped = []
    for i in range(0, len(text), _TXT_CHUNK):
        chunk = text[i : i + _TXT_CHUNK].replace("\\", "\\\\").replace('"', '\\"')
        escaped.append(f'"{chunk}"')
    if len(escaped) == 1:
        return escaped[0]
    return "( " + " ".join(escaped) + " )"


def _zone_value(record: Record) -> str:
    return quote_txt(record.value) if record.rtype == "TXT" else record.value


def missing_glue(rs: RecordSet, ns: str) -> bool:
    """True when name server ``ns`` lies inside ``rs.domain``'s zone but has no A or AAAA there.

    Such a zone names its own server without the address to reach it ("missing glue"):
    name servers and ``kzonecheck`` refuse to load it.
    """
    origin, host = absolute(rs.domain), absolute(ns)
    if not in_zone(host, origin):
        return False
    return not any(r.rtype in ("A", "AAAA") and r.name.lower() == host.lower() for r in rs.records)


def to_zone(rs: RecordSet, *, header: str, soa: tuple[str, int] | None = None) -> str:
    """The records as a zone file for ``rs.domain``.

    Records outside the zone (a mail host in another domain) are written as
    comments naming the zone they belong to. With ``soa=(hostname, serial)`` the
    file is a complete zone (SOA and NS first); without, it is a fragment for
    ``$INCLUDE`` or pasting into an existing zone.
    """
    origin = absolute(rs.domain)
    ttl = rs.records[0].ttl if rs.records else 3600
    lines = [f"; {header}", f"$ORIGIN {origin}", f"$TTL {ttl}"]
    if soa is not None:
        ns, serial = soa
        lines += [
            f"@ IN SOA {absolute(ns)} hostmaster.{origin} ( {serial} 3600 900 1209600 300 )",
            f"@ IN NS {absolute(ns)}",
        ]
    outside: list[Record] = []
    for record in rs.records:
        if not in_zone(record.name, origin):
            outside.append(record)
            continue
        rel = "@" if record.name.lower() == origin.lower() else record.name[: -len(origin) - 1]
        lines.append(f"{rel:<34} {record.ttl:>6} IN {record.rtype:<5} {_zone_value(record)}")
    if outside:
        lines.append(
            "; These names are outside this zone: publish them in the zone that holds them."
        )
        zones = dict.fromkeys(r.zone for r in outside)
        for zone in zones:
            if zone:
                lines.append(f"; -- in zone {zone}")
            lines += [
                f"; {r.name} {r.ttl} IN {r.rtype} {_zone_value(r)}"
                for r in outside
                if r.zone == zone
            ]
    return "\n".join(lines) + "\n"
