"""Throughput and latency through the rendered stack vs a minimal hand-written config.

Both configs run on the same Postfix and Dovecot binaries, the same ports, the
same SQLite store and the same folders. Load: Postfix's smtp-source, 10
sessions, 1 KiB messages into port 25, delivered over LMTP into a Maildir.
Latency: probe messages sent one at a time during the load, from SMTP submission
(port 25 DATA) until IMAP STATUS shows them. Goal: rendered/baseline >= 0.95.

Usage: .venv/bin/python bench/e2e.py [--messages 2000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import imaplib
import shutil
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.integration.stack import MailStack, render_site

PW = "Bench-Password-1"

BASELINE_MAIN = """\
compatibility_level = 3.6
queue_directory = {root}/spool
data_directory = {root}/pfdata
maillog_file_prefixes = {root}/log, /var, /dev/stdout
maillog_file = {root}/log/postfix.log
myhostname = mail.example.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.1/32
smtp_dns_support_level = disabled
virtual_mailbox_domains = sqlite:{conf}/d.cf
virtual_mailbox_maps = sqlite:{conf}/m.cf
virtual_alias_maps = sqlite:{conf}/a.cf
virtual_transport = lmtp:unix:{root}/run/lmtp
smtpd_tls_cert_file = {root}/tls/cert.pem
smtpd_tls_key_file = {root}/tls/key.pem
smtpd_tls_security_level = may
smtpd_sasl_type = dovecot
smtpd_sasl_path = {root}/run/auth-postfix
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination
"""

BASELINE_MASTER = (
    """\
{smtp} inet n - n - - smtpd
{submission} inet n - n - - smtpd
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
"""
    + "\n".join(
        f"{name} unix {p} - n {w} {m} {cmd}"
        for name, p, w, m, cmd in (
            ("pickup", "n", "60", "1", "pickup"),
            ("cleanup", "n", "-", "0", "cleanup"),
            ("qmgr", "n", "300", "1", "qmgr"),
            ("tlsmgr", "-", "1000?", "1", "tlsmgr"),
            ("rewrite", "-", "-", "-", "trivial-rewrite"),
            ("bounce", "-", "-", "0", "bounce"),
            ("defer", "-", "-", "0", "bounce"),
            ("trace", "-", "-", "0", "bounce"),
            ("verify", "-", "-", "1", "verify"),
            ("flush", "n", "1000?", "0", "flush"),
            ("proxymap", "-", "-", "-", "proxymap"),
            ("smtp", "-", "-", "-", "smtp"),
            ("relay", "-", "-", "-", "smtp"),
            ("showq", "n", "-", "-", "showq"),
            ("error", "-", "-", "-", "error"),
            ("retry", "-", "-", "-", "error"),
            ("discard", "-", "-", "-", "discard"),
            ("lmtp", "-", "-", "-", "lmtp"),
            ("anvil", "-", "-", "1", "anvil"),
            ("scache", "-", "-", "1", "scache"),
        )
    )
    + "\npostlog unix-dgram n - n - 1 postlogd\n"
)

BASELINE_DOVECOT = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/log/dovecot.log
protocols = imap lmtp
listen = 127.0.0.1
ssl = yes
ssl_cert = <{root}/tls/cert.pem
ssl_key = <{root}/tls/key.pem
mail_uid = 5000
mail_gid = 5000
first_valid_uid = 5000
mail_location = maildir:~/Maildir
passdb {{
  driver = sql
  args = {conf}/sql.conf
}}
userdb {{
  driver = sql
  args = {conf}/sql.conf
}}
service imap-login {{
  inet_listener imap {{
    port = {imap}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service lmtp {{
  unix_listener lmtp {{
    mode = 0600
    user = postfix
  }}
}}
service auth {{
  unix_listener auth-postfix {{
    mode = 0660
    user = postfix
  }}
}}
"""

BASELINE_SQL = """\
driver = sqlite
connect = {db}
password_query = SELECT address AS user, password_hash AS password \\
  FROM mailboxes WHERE address = '%u'
user_query = SELECT '{root}/mail/' || domain || '/' || local_part AS home \\
  FROM mailboxes WHERE address = '%u'
"""


def write_baseline(stack: MailStack, db: str) -> MailStack:
    """The hand-written config, next to the rendered one; returns a stack object using it."""
    target = stack.root / "baseline"
    conf_pf, conf_dc = target / "postfix", target / "dovecot"
    conf_pf.mkdir(parents=True)
    conf_dc.mkdir(parents=True)
    values = {"root": stack.root, "conf": conf_pf, "db": db, **stack.ports}
    (conf_pf / "main.cf").write_text(BASELINE_MAIN.format(**values))
    (conf_pf / "master.cf").write_text(BASELINE_MASTER.format(**values))
    for name, query in (
        ("d", "SELECT name FROM domains WHERE name = '%s'"),
        ("m", "SELECT address FROM mailboxes WHERE address = '%s'"),
        (
            "a",
            "SELECT t.destination FROM aliases a JOIN alias_destinations t ON t.alias_id = a.id "
            "WHERE a.address = '%s'",
        ),
    ):
        (conf_pf / f"{name}.cf").write_text(f"dbpath = {db}\nquery = {query}\n")
    values["conf"] = conf_dc
    (conf_dc / "dovecot.conf").write_text(BASELINE_DOVECOT.format(**values))
    (conf_dc / "sql.conf").write_text(BASELINE_SQL.format(**values))
    return replace(stack, target=target, pids={})


def count(maildir: Path) -> int:
    return sum(
        len(list((maildir / sub).iterdir())) for sub in ("new", "cur") if (maildir / sub).is_dir()
    )


def probe_latencies(stack: MailStack, probe: str, n: int, stop: threading.Event) -> list[float]:
    """Send probes one at a time; time each from SMTP DATA until IMAP STATUS counts it."""
    out = []
    imap = imaplib.IMAP4(stack.host, stack.ports["imap"])
    imap.login(probe, PW)
    try:
        base = int(imap.status("INBOX", "(MESSAGES)")[1][0].split()[-1].strip(b")"))
        for i in range(n):
            if stop.is_set():
                break
            t0 = time.perf_counter()
            with smtplib.SMTP(stack.host, stack.ports["smtp"], local_hostname="probe.test") as c:
                c.sendmail("p@example.net", [probe], f"Subject: probe {i}\r\n\r\nx\r\n")
            while True:
                seen = int(imap.status("INBOX", "(MESSAGES)")[1][0].split()[-1].strip(b")"))
                if seen >= base + i + 1:
                    break
                if time.perf_counter() - t0 > 60:
                    raise TimeoutError("probe not delivered")
                time.sleep(0.002)
            out.append(time.perf_counter() - t0)
    finally:
        imap.logout()
    return out


def run_load(stack: MailStack, messages: int, probes: int) -> dict[str, float]:
    maildir = stack.root / "mail" / "example.test" / "bob" / "Maildir"
    before = count(maildir)
    stop = threading.Event()
    lat: list[float] = []
    prober = threading.Thread(
        target=lambda: lat.extend(probe_latencies(stack, "probe@example.test", probes, stop))
    )
    t0 = time.perf_counter()
    prober.start()
    subprocess.run(
        [
            "smtp-source",
            "-l",
            "1024",
            "-m",
            str(messages),
            "-s",
            "10",
            "-M",
            "client.example.net",
            "-f",
            "loadgen@example.net",
            "-t",
            "bob@example.test",
            f"{stack.host}:{stack.ports['smtp']}",
        ],
        check=True,
        capture_output=True,
    )
    accepted = time.perf_counter() - t0
    while count(maildir) - before < messages:
        if time.perf_counter() - t0 > 300:
            raise TimeoutError("messages not delivered")
        time.sleep(0.02)
    landed = time.perf_counter() - t0
    prober.join()
    lat.sort()
    return {
        "accepted_per_s": messages / accepted,
        "landed_per_s": messages / landed,
        "p50_ms": statistics.median(lat) * 1000,
        "p95_ms": lat[int(len(lat) * 0.95) - 1] * 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--probes", type=int, default=40)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mp-bench-", dir="/tmp"))
    root.chmod(0o755)
    db = root / "db" / "mailprov.sqlite"
    db.parent.mkdir()
    rendered = render_site(root, f"sqlite:///{db}", name="bench")
    for user in ("bob", "probe"):
        rendered.add_mailbox(f"{user}@example.test", PW, "--quota", "0")
    baseline = write_baseline(rendered, str(db))
    results: dict[str, list[dict[str, float]]] = {"rendered": [], "baseline": []}
    try:
        for _ in range(args.rounds):
            for name, stack in (("rendered", rendered), ("baseline", baseline)):
                stack.start(greet=("smtp", "imap"))
                try:
                    results[name].append(run_load(stack, args.messages, args.probes))
                finally:
                    stack.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(
        f"{args.messages} messages x {args.rounds} rounds, smtp-source 10 sessions, 1 KiB, "
        f"{args.probes} latency probes per run"
    )
    summary = {}
    for name, runs in results.items():
        summary[name] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        s = summary[name]
        print(
            f"{name:9} accepted {s['accepted_per_s']:6.0f} msg/s  "
            f"landed {s['landed_per_s']:6.0f} msg/s"
            f"  latency p50 {s['p50_ms']:6.1f} ms  p95 {s['p95_ms']:6.1f} ms"
        )
    ratio = summary["rendered"]["landed_per_s"] / summary["baseline"]["landed_per_s"]
    print(
        f"ratio rendered/baseline (landed msg/s): {ratio:.2f} (goal >= 0.95) -> "
        f"{'OK' if ratio >= 0.95 else 'MISSED'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
