"""DNS queries (dnspython) -> typed answers, and the comparison of expected records with them.

A check ends in one of four states: ``ok``; ``missing`` (the name or the record
type does not exist); ``wrong`` (records are there but not the expected one; both
are shown); ``unknown`` (timeout, SERVFAIL, REFUSED: the server did not say, so
nothing is claimed). Only ``missing`` and ``wrong`` fail ``dns check``.

Names are always queried absolute (never through a search list). A check that
is not ``ok`` is retried before it is reported.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from mailprov.dkim import parse_tags
from mailprov.dnsrecords import Record
from mailprov.errors import InvalidValue

OK, MISSING, WRONG, UNKNOWN = "ok", "missing", "wrong", "unknown"
FAILING = frozenset({MISSING, WRONG})
_WORKERS = 8


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


def system_nameserver() -> Nameserver:
    """The first name server of /etc/resolv.conf."""
    import dns.resolver  # noqa: PLC0415

    try:
        resolver = dns.resolver.Resolver()
    except dns.resolver.NoResolverConfiguration:
        raise InvalidValue(
            "no name server is configured in /etc/resolv.conf", hint="pass --nameserver IP[:PORT]"
        ) from None
    return Nameserver(str(resolver.nameservers[0]))


@dataclass
class Querier:
    """Sends one query at a time to one server (UDP, TCP when truncated)."""

    nameserver: Nameserver
    timeout: float = 2.0

    def query(self, name: str, rdtype: str) -> Answer:
        """Ask for ``rdtype`` records at absolute ``name``."""
        import dns.exception  # noqa: PLC0415
        import dns.message  # noqa: PLC0415
        import dns.name  # noqa: PLC0415
        import dns.query  # noqa: PLC0415
        import dns.rcode  # noqa: PLC0415
        import dns.rdatatype  # noqa: PLC0415

        qname = dns.name.from_text(name if name.endswith(".") else name + ".")
        wanted = dns.rdatatype.from_text(rdtype)
        request = dns.message.make_query(qname, wanted)
        try:
            response, _ = dns.query.udp_with_fallback(
                request, self.nameserver.address, timeout=self.timeout, port=self.nameserver.port
            )
        except dns.exception.Timeout:
            return Answer(
                Outcome.FAILED, detail=f"no answer from {self.nameserver} in {self.timeout:g} s"
            )
        except (OSError, dns.exception.DNSException) as exc:
            return Answer(Outcome.FAILED, detail=f"query to {self.nameserver} failed: {exc}")
        rcode = response.rcode()
        if rcode == dns.rcode.NXDOMAIN:
            return Answer(Outcome.NXDOMAIN, detail=f"{name} does not exist")
        if rcode != dns.rcode.NOERROR:
            return Answer(
                Outcome.FAILED, detail=f"{self.nameserver} answered {dns.rcode.to_text(rcode)}"
            )
        values: list[str] = []
        for rrset in response.answer:
            if rrset.rdtype != wanted:
                continue
            values += [_text(rdata) for rdata in rrset]
        if not values:
            return Answer(Outcome.NODATA, detail=f"no {rdtype} record at {name}")
        return Answer(Outcome.ANSWER, tuple(values))


def _text(rdata: Any) -> str:
    strings = getattr(rdata, "strings", None)
    if strings is not None:
        return b"".join(strings).decode("utf-8", "replace")
    return str(rdata.to_text())


# -- comparing -------------------------------------------------------------------


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
    "dns.mta_sts.txt": "v=stsv1",
    "dns.tls_rpt": "v=tlsrptv1",
}
#: Tags that must match for tag-list TXT records (the rest may differ).
_TAGS = {
    "dns.dkim.selector": ("k", "p"),
    "dns.dmarc": ("p", "rua", "ruf"),
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


@dataclass
class CheckPlan:
    """How to run checks: the querier, retries, and a sleep function (tests pass a fast one)."""

    querier: Querier
    retries: int = 2
    retry_delay: float = 1.0
    sleep: Callable[[float], None] = field(default=time.sleep)
    workers: int = _WORKERS

    def _retrying(self, attempt: Callable[[], CheckResult]) -> CheckResult:
        result = attempt()
        tries = 1
        while result.status != OK and tries <= self.retries:
            self.sleep(self.retry_delay)
            result = attempt()
            tries += 1
        return CheckResult(**{**result.__dict__, "attempts": tries})

    def check_record(self, record: Record) -> CheckResult:
        """One record, retried until ok or out of tries."""

        def attempt() -> CheckResult:
            answer = self.querier.query(record.name, record.rtype)
            address = None
            if record.rtype == "CNAME" and answer.outcome is not Outcome.ANSWER:
                address = self.querier.query(record.name, "A")
                if address.outcome is not Outcome.ANSWER:
                    address = self.querier.query(record.name, "AAAA")
            return compare(record, answer, address_answer=address)

        return self._retrying(attempt)

    def check_mx_coverage(self, domain: str, patterns: Sequence[str]) -> CheckResult:
        """The MTA-STS MX coverage check, retried like the others."""
        return self._retrying(
            lambda: mx_coverage(
                domain, patterns, self.querier.query(domain.rstrip(".") + ".", "MX")
            )
        )

    def run(
        self, records: Sequence[Record], *, domain: str, mx_patterns: Sequence[str]
    ) -> list[CheckResult]:
        """Every record's check plus MX coverage, concurrently, in the records' order."""
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            futures = [pool.submit(self.check_record, r) for r in records]
            futures.append(pool.submit(self.check_mx_coverage, domain, mx_patterns))
            return [f.result() for f in futures]
