"""Comparing the records a domain needs with what a name server answered (pure; no I/O).

The queries themselves are :mod:`mailprov.system.dns`.

A check ends in one of four states: ``ok``; ``missing`` (the name or the record
type does not exist); ``wrong`` (records are there but not the expected one; both
are shown); ``unknown`` (timeout, SERVFAIL, REFUSED: the server did not say, so
nothing is claimed). Only ``missing`` and ``wrong`` fail ``dns check``.

Names are always queried absolute (never through a search list). A check that
is not ``ok`` is retried before it is reported.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from mailprov.errors import InvalidValue
from mailprov.rules.dkim import parse_tags
from mailprov.rules.dnsrecords import Record

OK, MISSING, WRONG, UNKNOWN = "ok", "missing", "wrong", "unknown"
FAILING = frozenset({MISSING, WRONG})


class Outcome(Enum):
    """What a DNS server answered."""

    ANSWER = "answer"
    NODATA = "nodata"
    NXDOMAIN = "nxdomain"
    FAILED = "failed"


@dataclass(frozen=True)
class Answer:
    """A typed DNS answer: the outcome and the records' texts (TXT: joined strings)."""

    outcome: Outcome
    values: tuple[str, ...] = ()
    detail: str = ""


@dataclass(frozen=True)
class Nameserver:
    """Where queries go."""

    address: str
    port: int = 53

    def __str__(self) -> str:
        return (
            f"[{self.address}]:{self.port}"
            if ":" in self.address
            else f"{self.address}:{self.port}"
        )


def parse_nameserver(raw: str) -> Nameserver:
    """``IP``, ``IP:PORT`` or ``[IPv6]:PORT`` as a Nameserver.

    Raises:
        InvalidValue: not an IP address (names are refused: the server must not need DNS itself).
    """
    text = raw.strip()
    host, port = text, 53
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":") or not rest[1:].isdigit():
                raise InvalidValue(
                    f"'{raw}' is not IP[:PORT]", hint="e.g. 127.0.0.1:5353 or [::1]:5353"
                )
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        if not port_text.isdigit():
            raise InvalidValue(f"'{raw}' is not IP[:PORT]", hint="e.g. 127.0.0.1:5353")
        port = int(port_text)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise InvalidValue(
            f"'{raw}' is not an IP address",
            hint="give the name server as IP[:PORT], e.g. 127.0.0.1:5353",
        ) from None
    if not 0 < port < 65536:
        raise InvalidValue(f"port {port} of '{raw}' is not 1-65535")
    return Nameserver(host, port)


@dataclass(frozen=True)
class CheckResult:
    """One check: its stable ID, what was expected and found, and its state."""

    check: str
    name: str
    rtype: str
    status: str
    expected: str
    found: tuple[str, ...] = ()
    detail: str = ""
    finding: str = ""
    attempts: int = 1

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "check": self.check,
            "status": self.status,
            "finding": self.finding or None,
            "name": self.name,
            "type": self.rtype,
            "expected": self.expected,
            "found": list(self.found),
            "detail": self.detail,
            "attempts": self.attempts,
        }


def _norm_name(value: str) -> str:
    return value.strip().rstrip(".").lower()


def _norm(rtype: str, value: str) -> str:  # noqa: PLR0911  (one return per record type)
    """A comparable form of a record value of ``rtype``."""
    parts = value.split()
    if rtype in {"CNAME", "NS"}:
        return _norm_name(value)
    if rtype == "MX":
        return _norm_name(parts[-1])
    if rtype == "SRV":
        return f"{parts[2]} {_norm_name(parts[3])}" if len(parts) == 4 else value
    if rtype in {"A", "AAAA"}:
        try:
            return str(ipaddress.ip_address(value.strip()))
        except ValueError:
            return value
    if rtype == "TLSA":
        return " ".join([*parts[:3], "".join(parts[3:]).lower()])
    return " ".join(parts)


#: TXT checks look only at the TXT records that start with their tag (others share the name).
_TXT_PREFIX = {
    "dns.spf": "v=spf1",
    "dns.dmarc": "v=dmarc1",
    "dns.dmarc.report_auth": "v=dmarc1",
    "dns.mta_sts.txt": "v=stsv1",
    "dns.tls_rpt": "v=tlsrptv1",
}
#: Tags that must match for tag-list TXT records (the rest may differ).
_TAGS = {
    "dns.dkim.selector": ("k", "p"),
    "dns.dmarc": ("p", "rua", "ruf"),
    "dns.dmarc.report_auth": ("v",),
    "dns.mta_sts.txt": ("id",),
    "dns.tls_rpt": ("rua",),
}


def _txt_matches(check: str, expected: str, found: str) -> bool:
    if check in _TAGS:
        want, got = parse_tags(expected), parse_tags(found)
        if check == "dns.dkim.selector":
            got.setdefault("k", "rsa")
        return all(want.get(tag, "") == got.get(tag, "") for tag in _TAGS[check])
    return " ".join(expected.lower().split()) == " ".join(found.lower().split())


def _finding(check: str, status: str) -> str:
    return "" if status == OK else f"{check}_{status}"


def compare(  # noqa: PLR0911  (one return per check outcome reads best)
    record: Record, answer: Answer, *, address_answer: Answer | None = None
) -> CheckResult:
    """Compare one expected record with what the server answered."""

    def result(
        status: str, found: Sequence[str] = (), detail: str = "", finding: str = ""
    ) -> CheckResult:
        return CheckResult(
            record.check,
            record.name,
            record.rtype,
            status,
            record.value,
            tuple(found),
            detail,
            finding or _finding(record.check, status),
        )

    if answer.outcome is Outcome.FAILED:
        return result(UNKNOWN, detail=answer.detail)
    values = list(answer.values)
    if record.rtype == "TXT" and record.check in _TXT_PREFIX:
        values = [v for v in values if v.lower().startswith(_TXT_PREFIX[record.check])]
    if record.rtype == "CNAME" and not values and address_answer is not None:
        # Address records instead of a CNAME serve the web host just as well.
        if address_answer.outcome is Outcome.FAILED:
            return result(UNKNOWN, detail=address_answer.detail)
        if address_answer.values:
            return result(OK, address_answer.values, "address records instead of a CNAME")
    if not values:
        return result(MISSING, detail=answer.detail or f"no {record.rtype} record at {record.name}")
    if record.check == "dns.spf" and len(values) > 1:
        return result(
            WRONG,
            values,
            "more than one SPF record: receivers treat that as an error",
            "dns.spf.multiple",
        )
    if record.rtype == "TXT":
        ok = any(_txt_matches(record.check, record.value, v) for v in values)
    else:
        ok = _norm(record.rtype, record.value) in {_norm(record.rtype, v) for v in values}
    if ok:
        return result(OK, values)
    return result(WRONG, values, f"expected {record.value}")


def mx_coverage(domain: str, patterns: Sequence[str], mx_answer: Answer) -> CheckResult:
    """Are all MX hosts in DNS covered by the MTA-STS policy's ``mx`` patterns (RFC 8461 4.1)?"""
    name = domain.rstrip(".") + "."
    expected = ", ".join(patterns)

    def covered(host: str) -> bool:
        host = _norm_name(host)
        for pattern in patterns:
            pat = _norm_name(pattern)
            if pat.startswith("*."):
                head, _, tail = host.partition(".")
                if head and tail == pat[2:]:
                    return True
            elif host == pat:
                return True
        return False

    check = "dns.mta_sts.mx_coverage"
    if mx_answer.outcome is Outcome.FAILED:
        return CheckResult(
            check,
            name,
            "MX",
            UNKNOWN,
            expected,
            detail=mx_answer.detail,
            finding="dns.mta_sts.mx_coverage_unknown",
        )
    hosts = [v.split()[-1] for v in mx_answer.values]
    if not hosts:
        return CheckResult(
            check,
            name,
            "MX",
            MISSING,
            expected,
            detail="no MX records to cover",
            finding="dns.mta_sts.mx_missing",
        )
    uncovered = [h for h in hosts if not covered(h)]
    if uncovered:
        return CheckResult(
            check,
            name,
            "MX",
            WRONG,
            expected,
            tuple(hosts),
            "not in the MTA-STS policy: " + ", ".join(uncovered),
            "dns.mta_sts.mx_not_covered",
        )
    return CheckResult(check, name, "MX", OK, expected, tuple(hosts))


def reverse_name(address: str) -> str:
    """The absolute PTR name of an IP address (``10.2.0.192.in-addr.arpa.``)."""
    return ipaddress.ip_address(address).reverse_pointer + "."


def ptr_check(
    family: str, address: str, hostname: str, ptr: Answer, forward: Answer | None
) -> CheckResult:
    """Forward-confirmed reverse DNS of ``address`` (``family`` ``ipv4`` or ``ipv6``).

    Ok when a PTR of the address names ``hostname`` and ``forward`` (the A or AAAA
    records of ``hostname``; None when the PTR did not name it) holds the address:
    receivers compare the name the mail host greets with against it, and many refuse
    or score mail from an address without such a PTR. ``unknown`` when the reverse
    zone could not be asked (REFUSED, SERVFAIL, timeout).
    """
    check = f"dns.ptr.{family}"
    name = reverse_name(address)
    want = hostname.rstrip(".") + "."

    def result(
        status: str, found: Sequence[str] = (), detail: str = "", finding: str = ""
    ) -> CheckResult:
        return CheckResult(
            check,
            name,
            "PTR",
            status,
            want,
            tuple(found),
            detail,
            finding or _finding(check, status),
        )

    if ptr.outcome is Outcome.FAILED:
        return result(
            UNKNOWN, detail=f"the reverse zone of {address} cannot be asked: {ptr.detail}"
        )
    if not ptr.values:
        return result(MISSING, detail=ptr.detail or f"no PTR record for {address}")
    if _norm_name(want) not in {_norm_name(v) for v in ptr.values}:
        return result(
            WRONG,
            ptr.values,
            f"{address} points to {', '.join(ptr.values)}, not to {want}",
            f"{check}_wrong_name",
        )
    if forward is None or forward.outcome is Outcome.FAILED:
        return result(UNKNOWN, ptr.values, forward.detail if forward else "no forward answer")
    addresses = {_norm("A", v) for v in forward.values}
    if str(ipaddress.ip_address(address)) not in addresses:
        return result(
            WRONG,
            ptr.values,
            f"{want} does not resolve back to {address} (found: "
            f"{', '.join(forward.values) or 'nothing'})",
            f"{check}_not_confirmed",
        )
    return result(OK, ptr.values)


def covers(patterns: list[str], name: str) -> bool:
    """Does a TLS certificate with these DNS names cover ``name`` (a wildcard is one left label)?"""
    name = name.rstrip(".").lower()
    for raw in patterns:
        pattern = raw.rstrip(".").lower()
        if pattern == name:
            return True
        if pattern.startswith("*."):
            head, _, tail = name.partition(".")
            if head and tail == pattern[2:]:
                return True
    return False


@dataclass(frozen=True)
class Advice:
    """A warning about a domain's setup that its records alone do not fail: a stable ID,
    what is at risk, and what to do."""

    id: str
    message: str
    action: str

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {"id": self.id, "message": self.message, "action": self.action}


def published_dmarc_policy(results: Sequence[CheckResult]) -> str | None:
    """The ``p=`` of the DMARC record DNS served (lower case), or None when none was found."""
    for result in results:
        if result.check != "dns.dmarc":
            continue
        for value in result.found:
            tags = parse_tags(value)
            if tags.get("v", "").upper() == "DMARC1" and tags.get("p"):
                return tags["p"].lower()
    return None


def forwarding_advice(
    domain: str, policy: str | None, forwards: Sequence[str], *, arc_seal: bool
) -> list[Advice]:
    """Warn when ``domain`` publishes DMARC p=quarantine or p=reject while the site forwards
    mail to other domains (``forwards``: where, as shown to the user) without ARC sealing.

    Forwarded mail reaches the next receiver from this host, not from its sender: SPF fails
    there, so DMARC passes only while the original DKIM signature survives the trip; a
    receiver that forwards once more, or changes the message, then applies the policy
    (reject or quarantine). An ARC seal lets those receivers trust this host's checks.
    """
    if arc_seal or policy not in ("quarantine", "reject") or not forwards:
        return []
    shown = ", ".join(forwards[:5]) + (
        f" and {len(forwards) - 5} more" if len(forwards) > 5 else ""
    )
    verb = "reject it" if policy == "reject" else "file it as spam"
    return [
        Advice(
            "dns.dmarc.forwarding_unsealed",
            f"{domain} publishes DMARC p={policy} and this site forwards mail to other domains "
            f"({shown}) without an ARC seal: forwarded mail fails SPF at the next receiver, "
            f"and when its DKIM signature does not survive (a further forward, a list, a "
            f"changed body) receivers {verb}, {domain}'s own users' mail included",
            "seal forwarded mail with ARC: [rspamd] enabled = true and arc_seal = true (the "
            'domain\'s RSA DKIM key signs the seal; README, "Inbound protection (rspamd)"), '
            "then 'mailprov deploy apply --reload'",
        )
    ]
