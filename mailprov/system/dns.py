"""DNS queries on the wire (dnspython): typed answers, and running the checks concurrently.

What the answers are compared with lives in :mod:`mailprov.rules.dnscheck`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from mailprov.errors import InvalidValue
from mailprov.rules.dnscheck import (
    OK,
    Answer,
    CheckResult,
    Nameserver,
    Outcome,
    compare,
    mx_coverage,
    ptr_check,
    reverse_name,
)
from mailprov.rules.dnsrecords import Record

_WORKERS = 8


def system_nameserver() -> Nameserver:
    """The first name server of /etc/resolv.conf."""
    import dns.resolver  # noqa: PLC0415  (lazy: a heavy import only this path needs)

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
        import dns.exception  # noqa: PLC0415  (lazy: a heavy import only this path needs)
        import dns.message  # noqa: PLC0415  (lazy: a heavy import only this path needs)
        import dns.name  # noqa: PLC0415  (lazy: a heavy import only this path needs)
        import dns.query  # noqa: PLC0415  (lazy: a heavy import only this path needs)
        import dns.rcode  # noqa: PLC0415  (lazy: a heavy import only this path needs)
        import dns.rdatatype  # noqa: PLC0415  (lazy: a heavy import only this path needs)

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

    def check_ptr(self, family: str, address: str, hostname: str) -> CheckResult:
        """Forward-confirmed reverse DNS of one address of the mail host, retried."""

        def attempt() -> CheckResult:
            ptr = self.querier.query(reverse_name(address), "PTR")
            forward = None
            want = hostname.rstrip(".").lower()
            if any(v.rstrip(".").lower() == want for v in ptr.values):
                forward = self.querier.query(want + ".", "A" if family == "ipv4" else "AAAA")
            return ptr_check(family, address, hostname, ptr, forward)

        return self._retrying(attempt)

    def run(
        self,
        records: Sequence[Record],
        *,
        domain: str,
        mx_patterns: Sequence[str],
        ptr: Sequence[tuple[str, str]] = (),
        hostname: str = "",
    ) -> list[CheckResult]:
        """Every record's check, MX coverage and the PTR of each ``(family, address)``.

        Run concurrently; the results come in the records' order.
        """
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            futures = [pool.submit(self.check_record, r) for r in records]
            futures.append(pool.submit(self.check_mx_coverage, domain, mx_patterns))
            futures += [pool.submit(self.check_ptr, fam, ip, hostname) for fam, ip in ptr]
            return [f.result() for f in futures]
