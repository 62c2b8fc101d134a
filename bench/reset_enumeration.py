"""Password reset: does the answer's timing tell whether an address is a mailbox?

Run: .venv/bin/python bench/reset_enumeration.py [--rounds N] [--mailboxes M] [--portal]

A real ``mailprov serve`` (SQLite, SHA512-CRYPT) in this process, codes going by SMTP to
mailprov's capture relay in another process (as a real smarthost would be). ``POST /api/v1/password-reset`` (by contact) and a wrong code on
``POST /api/v1/password-reset/confirm`` are timed from a real HTTP client (httpx, loopback) for
mailboxes with a verified contact and for addresses that are no mailbox, interleaved, each
request from another client address (X-Forwarded-For through the trusted loopback proxy) so
the per-client limit never answers. ``--gap-ms`` is the mean random wait between requests
(default 50 ms), and each round's order is shuffled, so the background sends of codes
(known addresses only) do not line up with one kind of request. Reported: median and p95 of each, and the ratio
known / unknown of the medians. Goal: within 10 % (0.9-1.1).

``--portal`` times the portal's forms instead (``POST /password-reset`` by contact and a wrong
code on ``POST /password-reset/code``, each a 303 to the same page for both kinds), with the
form's CSRF token and a fresh ``once`` value, as a browser sends them.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _config(folder: Path, relay_port: int, web_port: int) -> Path:
    config = folder / "mailprov.toml"
    config.write_text(
        f"""
[store]
url = "sqlite:///{folder / "store.sqlite"}"
[passwords]
scheme = "SHA512-CRYPT"
reset_per_client_hour = 1000
[identity]
pepper_file = "{folder / "pepper"}"
resend_seconds = 0
codes_per_hour = 100
[notify]
smarthost = "127.0.0.1"
port = {relay_port}
sender = "bench@example.test"
[web]
listen = "127.0.0.1:{web_port}"
"""
    )
    return config


def main() -> None:  # noqa: PLR0915  (one linear measurement script)
    """Set up, measure, print."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--mailboxes", type=int, default=60)
    parser.add_argument("--gap-ms", type=float, default=50.0)
    parser.add_argument("--portal", action="store_true", help="Time the portal's forms.")
    parser.add_argument(
        "--delivery-delay", type=float, help="Override web.recovery.DELIVERY_DELAY (seconds)."
    )
    args = parser.parse_args()

    import httpx

    from mailprov.rules import hashing
    from mailprov.services import accounts, contacts
    from mailprov.services.accounts import Actor
    from mailprov.settings import load_settings
    from mailprov.store import open_store
    from mailprov.store.migrate import upgrade
    from mailprov.web.server import make_services, serve
    from tests.conftest import free_port

    if args.delivery_delay is not None:
        from mailprov.web import recovery

        recovery.DELIVERY_DELAY = args.delivery_delay
    folder = Path(tempfile.mkdtemp(prefix="bench-reset-"))
    relay_port = free_port()
    relay = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mailprov",
            "relay",
            "serve",
            "--listen",
            f"127.0.0.1:{relay_port}",
            "--storage",
            str(folder / "relay"),
            "--api-listen",
            "",
            "--tls",
            "off",
            "--log-level",
            "error",
        ],
        stdout=subprocess.PIPE,
        env={**os.environ, "MAILPROV_CONFIG": ""},
        cwd=folder,
    )
    assert relay.stdout is not None
    relay.stdout.readline()  # the ready line
    config = _config(folder, relay_port, free_port())
    settings = load_settings(config_file=str(config), flags={})
    upgrade(settings.store.url)
    store = open_store(settings.store.url)
    now = int(time.time())
    accounts.add_domain(store, "example.test", actor=Actor("bench", now))
    services = make_services(settings, store)
    known = []
    for n in range(args.mailboxes):
        address = f"user{n}@example.test"
        new = accounts.NewPassword(hashing.hash_password("Bench-Passw0rd!", "SHA512-CRYPT"), None)
        accounts.add_mailbox(store, address, new, actor=Actor("bench", now))
        contacts.add_contact(
            store, settings, b"", address, f"c{n}@contacts.example", now=now, verified=True
        )
        known.append(address)
    unknown = [f"nobody{n}@example.test" for n in range(args.mailboxes)]
    loop, stop, urls = asyncio.new_event_loop(), asyncio.Event(), []
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(
            serve(
                services,
                listen=settings.web.listen,
                ready=lambda url: (urls.append(url), ready.set()),  # type: ignore[func-returns-value]
                stop=stop,
            )
        )

    threading.Thread(target=run, daemon=True).start()
    ready.wait(30)
    ips = iter(ipaddress.ip_address("10.0.0.1") + n for n in range(10**7))
    times: dict[tuple[str, str], list[float]] = {}
    with httpx.Client(base_url=urls[0], timeout=30, headers={"Origin": urls[0]}) as client:
        page = client.get("/password-reset").text if args.portal else ""
        csrf = page.partition('name="csrf" value="')[2].partition('"')[0]

        def request(step: str, address: str) -> tuple[str, dict[str, str], int]:
            if args.portal:
                once = os.urandom(12).hex()
                if step == "start":
                    form = {"address": address, "via": "contact"}
                    return "/password-reset", {"csrf": csrf, "once": once, **form}, 303
                return "/password-reset/code", {"csrf": csrf, "once": once, "code": "000000"}, 303
            if step == "start":
                return "/api/v1/password-reset", {"address": address, "via": "contact"}, 202
            return "/api/v1/password-reset/confirm", {"address": address, "code": "000000"}, 422

        def timed(kind: str, step: str, address: str) -> None:
            headers = {"X-Forwarded-For": str(next(ips))}
            path, body, expected = request(step, address)
            sent = {"data": body} if args.portal else {"json": body}
            began = time.perf_counter()
            answer = client.post(path, headers=headers, **sent)  # type: ignore[arg-type]
            spent = time.perf_counter() - began
            assert answer.status_code == expected, answer.text
            if args.portal:  # the same next page for both kinds, never an error page
                assert answer.headers["location"] == "/password-reset/code", answer.headers
            times.setdefault((kind, step), []).append(spent * 1000)
            time.sleep(random.uniform(0, 2 * args.gap_ms) / 1000)

        for step in ("start", "confirm"):  # warm-up
            timed("warm", step, known[0])
            timed("warm", step, unknown[0])
        for n in range(args.rounds):
            pair = [("known", known[n % len(known)]), ("unknown", unknown[n % len(unknown)])]
            random.shuffle(pair)
            for kind, address in pair:
                timed(kind, "start", address)
                timed(kind, "confirm", address)
    time.sleep(1)
    loop.call_soon_threadsafe(stop.set)
    relay.terminate()
    relay.wait(10)
    from mailprov.web.recovery import DELIVERY_DELAY

    print(
        f"{'portal forms' if args.portal else 'API'}: {args.rounds} rounds, "
        f"{args.mailboxes} mailboxes, gap {args.gap_ms:g} ms, delivery delay {DELIVERY_DELAY:g} s"
    )
    for step in ("start", "confirm"):
        med = {k: statistics.median(times[(k, step)]) for k in ("known", "unknown")}
        p95 = {k: statistics.quantiles(times[(k, step)], n=20)[-1] for k in ("known", "unknown")}
        print(
            f"{step:8} median known {med['known']:.2f} ms, unknown {med['unknown']:.2f} ms "
            f"(p95 {p95['known']:.2f} / {p95['unknown']:.2f}) -> ratio "
            f"{med['known'] / med['unknown']:.3f}"
        )


if __name__ == "__main__":
    main()
