"""How long `dns check` takes for one domain against a real knot on loopback.

Baseline (measured in the same run): the same checks one at a time (1 worker).
Prints wall times and the speed-up of the concurrent checker (8 workers), for a
server that answers and for one that never answers (every check ends 'unknown'
after its timeout and retries).

Run: .venv/bin/python bench/dns_check.py
"""

from __future__ import annotations

import socket
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mailprov.rules.dkim import generate
from mailprov.rules.dnscheck import Nameserver
from mailprov.rules.dnsrecords import DkimPublication, RecordInput, build, to_zone
from mailprov.system.dns import CheckPlan, Querier
from tests.conftest import free_port
from tests.integration.knot import Knot
from tests.unit.dns.test_records_and_checks import BASE

ROUNDS = 5


def _input() -> RecordInput:
    keys = [
        DkimPublication("s1", generate("rsa-2048").record, "active"),
        DkimPublication("s2", generate("ed25519").record, "active"),
    ]
    return replace(BASE, domain="bench.test", hostname="mail.bench.test", dkim=keys)


def _time(plan: CheckPlan, records: object, rounds: int) -> tuple[float, set[str]]:
    best = float("inf")
    statuses: set[str] = set()
    for _ in range(rounds):
        start = time.perf_counter()
        results = plan.run(records, domain="bench.test", mx_patterns=["mail.bench.test"])  # type: ignore[arg-type]
        best = min(best, time.perf_counter() - start)
        statuses = {r.status for r in results}
    return best, statuses


def main() -> None:
    """Print the figures."""
    rs = build(_input())
    zone = to_zone(rs, header="bench", soa=("ns.bench.test", 1))
    knot = Knot.start(Path(tempfile.mkdtemp(prefix="mailprov-bench-")))
    try:
        knot.load_zone("bench.test", zone)
        print(f"{len(rs.records) + 1} checks per run, best of {ROUNDS}")
        for label, workers in (("sequential (baseline)", 1), ("concurrent, 8 workers", 8)):
            plan = CheckPlan(
                Querier(Nameserver("127.0.0.1", knot.port), 1.0), retries=2, workers=workers
            )
            took, statuses = _time(plan, rs.records, ROUNDS)
            print(
                f"answering server  {label:<24} {took * 1000:8.1f} ms  statuses={sorted(statuses)}"
            )
            if workers == 1:
                base = took
        print(f"answering server  speed-up: {base / took:.1f}x")
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
            silent.bind(("127.0.0.1", port))
            for label, workers in (("sequential (baseline)", 1), ("concurrent, 8 workers", 8)):
                plan = CheckPlan(
                    Querier(Nameserver("127.0.0.1", port), 0.2),
                    retries=1,
                    retry_delay=0.0,
                    workers=workers,
                )
                took, statuses = _time(plan, rs.records, 1)
                shown = f"{took * 1000:8.1f} ms  statuses={sorted(statuses)}"
                print(f"silent server     {label:<24} {shown}")
                if workers == 1:
                    base = took
            print(f"silent server     speed-up: {base / took:.1f}x (timeout 0.2 s, 1 retry)")
    finally:
        knot.stop()


if __name__ == "__main__":
    main()
