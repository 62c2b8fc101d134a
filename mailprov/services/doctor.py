"""``mailprov doctor``: does what is running agree with the store and the site config?

Each check adds :class:`Finding` s with a stable ID (``doctor.<area>.<what>``), a
severity (``error``, ``warning``, ``info``) and what to do. Only errors make the
command fail. The checks: the store against the Maildirs (orphan folders;
mailboxes that never received mail, which is normal since Dovecot creates a
Maildir on first delivery), the deployed config against a fresh render
(``deploy plan``), the certificate's expiry, the configured ports on
``[check] host``, the Postfix queue, rspamd and its Redis (when ``[rspamd] enabled``),
on a site of several hosts (or reading from replicas) the cluster checks of
:mod:`mailprov.services.doctor_cluster`, and (unless skipped) the DNS checks.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailprov.errors import MailprovError
from mailprov.render import Layout
from mailprov.rules.dnscheck import covers
from mailprov.services.accounts import domain_names, mailbox_addresses
from mailprov.services.checks import check_host
from mailprov.services.deploy import plan
from mailprov.services.dns import check, forwarding_advice
from mailprov.services.doctor_cluster import cluster
from mailprov.services.doctor_rspamd import rspamd_health
from mailprov.services.findings import ERROR, INFO, WARNING, Finding
from mailprov.system.postfix import queue_size

if TYPE_CHECKING:
    from mailprov.settings import SiteConfig
    from mailprov.store import Store
    from mailprov.system.run import Runner

EXPIRY_WARNING_DAYS = 21
QUEUE_WARNING = 50
DAY = 86_400
#: The ports doctor expects to answer (lmtp is a unix socket in the rendered config).
PORTS = ("smtp", "submission", "submissions", "imap", "imaps", "pop3", "pop3s", "managesieve")


@dataclass
class Report:
    """Every finding, and which checks ran."""

    findings: list[Finding] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        """The findings that make doctor fail."""
        return [f for f in self.findings if f.severity == ERROR]

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data."""
        counts = {s: sum(f.severity == s for f in self.findings) for s in (ERROR, WARNING, INFO)}
        return {
            "ok": not self.errors,
            "checks": self.checks,
            "counts": counts,
            "findings": [f.to_json() for f in self.findings],
        }


#: Up to this many mailboxes that never received mail are each a finding; more are one.
NEVER_RECEIVED_LISTED = 20


def maildirs(store: Store, settings: SiteConfig, *, now: int) -> list[Finding]:
    """Store vs ``[dovecot] mail_root``: orphan folders, and mailboxes never delivered to."""

    root = settings.resolve_path(settings.dovecot.mail_root)
    domains = set(domain_names(store))
    boxes = set(mailbox_addresses(store))
    out = []
    if not root.is_dir():
        return [
            Finding(
                "doctor.maildir.root_missing",
                WARNING,
                f"the mail folder {root} does not exist",
                "run 'mailprov deploy apply' (it creates it) or fix [dovecot] mail_root",
                str(root),
            )
        ]
    delivered = set()
    for domain_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        known_domain = domain_dir.name in domains
        for home in sorted(p for p in domain_dir.iterdir() if p.is_dir()):
            address = f"{home.name}@{domain_dir.name}"
            if address in boxes:
                delivered.add(address)
            else:
                out.append(
                    Finding(
                        "doctor.maildir.orphan",
                        ERROR,
                        f"{home} holds mail for {address}, which is not a mailbox in the store"
                        + ("" if known_domain else f" (nor is {domain_dir.name} a domain)"),
                        "restore the mailbox ('mailprov mailbox add') or archive and remove "
                        "the folder",
                        address,
                    )
                )
    # A mailbox's home appears with its first delivery: the folders listed above are
    # the ones that received mail (no stat per mailbox). Many new mailboxes make one
    # finding, not one line each.
    never = sorted(boxes - delivered)
    hint = "nothing to do; 'mailprov check delivery ADDRESS' proves it works"
    if len(never) > NEVER_RECEIVED_LISTED:
        shown = ", ".join(never[:NEVER_RECEIVED_LISTED])
        out.append(
            Finding(
                "doctor.maildir.never_received",
                INFO,
                f"{len(never)} mailboxes have no Maildir yet: they never received mail "
                f"(Dovecot creates it on first delivery); the first: {shown}",
                hint,
                never[0],
            )
        )
        return out
    out += [
        Finding(
            "doctor.maildir.never_received",
            INFO,
            f"{address} has no Maildir yet: it never received mail "
            "(Dovecot creates it on first delivery)",
            hint,
            address,
        )
        for address in never
    ]
    return out


def rendered_config(store: Store, settings: SiteConfig, target: Path | None) -> list[Finding]:
    """The installed files against a fresh render of the site config and store."""

    try:
        planned = plan(settings, target=target, store=store)
    except MailprovError as exc:
        return [
            Finding(
                "doctor.config.unrenderable",
                ERROR,
                f"the site config cannot be rendered: {exc.message}",
                exc.hint or "fix the site config",
            )
        ]
    out = []
    for change in planned.changed:
        path = str(change.file.path)
        if change.edited:
            out.append(
                Finding(
                    "doctor.config.edited",
                    WARNING,
                    f"{path} differs from what mailprov installed (edited by hand?)",
                    "move the change into the site config, then "
                    "'mailprov deploy apply --overwrite-edits'",
                    path,
                )
            )
        else:
            out.append(
                Finding(
                    "doctor.config.outdated"
                    if change.status == "changed"
                    else "doctor.config.missing",
                    WARNING,
                    f"{path} is {'out of date' if change.status == 'changed' else 'not installed'}"
                    " with respect to the site config and store",
                    "run 'mailprov deploy plan --diff', then 'mailprov deploy apply --reload'",
                    path,
                )
            )
    return out


def certificate(settings: SiteConfig, *, now: int) -> list[Finding]:
    """``[tls] cert_file``: readable, not expired, not expiring within 21 days."""
    from cryptography import x509  # noqa: PLC0415  (lazy: a heavy import only this path needs)

    path = settings.resolve_path(settings.tls.cert_file)
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        return [
            Finding(
                "doctor.tls.invalid",
                ERROR,
                f"{path} ([tls] cert_file) is not a readable PEM certificate: {type(exc).__name__}",
                "point [tls] cert_file at the server's certificate",
                str(path),
            )
        ]
    until = int(cert.not_valid_after_utc.timestamp())
    shown = cert.not_valid_after_utc.strftime("%Y-%m-%d %H:%M UTC")
    if until <= now:
        return [
            Finding(
                "doctor.tls.expired",
                ERROR,
                f"the certificate {path} expired on {shown}: clients refuse to connect",
                "renew the certificate, install it at [tls] cert_file and reload the servers",
                str(path),
            )
        ]
    days = (until - now) / DAY
    if days < EXPIRY_WARNING_DAYS:
        return [
            Finding(
                "doctor.tls.expiring",
                WARNING,
                f"the certificate {path} expires in {days:.0f} day(s), on {shown}",
                "renew it now (ACME clients renew 30 days before expiry)",
                str(path),
            )
        ]
    return [
        Finding("doctor.tls.ok", INFO, f"the certificate is valid until {shown}", "", str(path))
    ]


def _certificate_names(path: Path) -> list[str] | None:
    """The DNS names of a PEM certificate's subjectAltName (None: not a readable certificate)."""
    from cryptography import x509  # noqa: PLC0415  (lazy: a heavy import only this path needs)

    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return None
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []  # clients match the subjectAltName only (RFC 6125 6.4.4)
    return [str(n) for n in san.get_values_for_type(x509.DNSName)]


def certificate_names(store: Store, settings: SiteConfig) -> list[Finding]:
    """Every name the site publishes is covered by the certificate that serves it.

    The mail host by ``[tls] cert_file`` (an error: mail clients refuse it); the web
    names (the web host, mta-sts/autoconfig/autodiscover of each domain) by the web
    certificate (a warning: MTA-STS senders cannot fetch the policy, RFC 8461 3.3).
    """
    from mailprov.rules.addresses import normalise_domain  # noqa: PLC0415
    from mailprov.services.clientconfig import web_certificate  # noqa: PLC0415

    host = normalise_domain(settings.site.hostname)
    web_cert = web_certificate(settings)[0]
    web = [normalise_domain(settings.dns.web_host or host)]
    for name in domain_names(store):
        web += [f"{label}.{name}" for label in ("mta-sts", "autoconfig", "autodiscover")]
    mail_cert = settings.resolve_path(settings.tls.cert_file)
    wanted = [(mail_cert, "[tls] cert_file", host, ERROR)]
    wanted += [
        (web_cert, "the web certificate", name, WARNING)
        for name in dict.fromkeys(web)
        if (web_cert, name) != (mail_cert, host)  # said once, as the error above
    ]
    out = []
    for path, what, name, severity in wanted:
        names = _certificate_names(path)
        if names is None or covers(names, name):
            continue  # an unreadable certificate is doctor.tls.invalid already
        out.append(
            Finding(
                "doctor.tls.name_missing",
                severity,
                f"{path} ({what}) does not cover {name}: clients fetching it over HTTPS or TLS "
                f"refuse the connection (the certificate names: {', '.join(names) or 'none'})",
                f"get a certificate that names {name} ([dns] web_cert_file for the web names)",
                name,
            )
        )
    return out


def ports(settings: SiteConfig, *, timeout: float = 1.0) -> list[Finding]:
    """Each configured port accepts a TCP connection on ``[check] host``."""

    host = check_host(settings)
    out = []
    for name in PORTS:
        port = getattr(settings.ports, name)
        try:
            with socket.create_connection((host, port), timeout=timeout):
                pass
        except OSError as exc:
            out.append(
                Finding(
                    "doctor.port.closed",
                    ERROR,
                    f"nothing accepts connections on {host}:{port} ([ports] {name}): "
                    f"{exc.strerror or type(exc).__name__}",
                    "start (or reload) Postfix and Dovecot; check [deploy] listen and [ports]",
                    name,
                )
            )
    return out


def queue(runner: Runner, settings: SiteConfig, target: Path | None) -> list[Finding]:
    """The number of messages waiting in the Postfix queue."""

    config_dir = Layout.for_target(settings, target).postfix_dir
    size = queue_size(runner, config_dir)
    if size is None:
        return [
            Finding(
                "doctor.queue.unknown",
                WARNING,
                f"'postqueue -c {config_dir} -j' failed: the queue size is unknown",
                "check that Postfix runs with that config folder",
            )
        ]
    if size >= QUEUE_WARNING:
        return [
            Finding(
                "doctor.queue.large",
                WARNING,
                f"{size} message(s) wait in the Postfix queue",
                "see why with 'postqueue -p' and the mail log; a down DKIM signer defers mail",
            )
        ]
    return [Finding("doctor.queue.size", INFO, f"{size} message(s) in the Postfix queue")]


def dns_summary(store: Store, settings: SiteConfig, plan: Any) -> list[Finding]:
    """The DNS checks of every domain, summarised per domain."""
    out = []
    for name in domain_names(store):
        try:
            results = check(store, settings, name, plan)
        except MailprovError as exc:
            out.append(Finding("doctor.dns.unchecked", WARNING, exc.message, exc.hint or "", name))
            continue
        out += [
            Finding(f"doctor.{a.id}", WARNING, a.message, a.action, name)
            for a in forwarding_advice(store, settings, name, results)
        ]
        bad = [r for r in results if r.status in ("missing", "wrong")]
        unknown = [r for r in results if r.status == "unknown"]
        if bad:
            out.append(
                Finding(
                    "doctor.dns.problems",
                    WARNING,
                    f"{len(bad)} of {len(results)} DNS check(s) for {name} failed: "
                    + ", ".join(sorted({r.finding or r.check for r in bad})),
                    f"run 'mailprov dns check {name}' and publish 'mailprov dns records {name}'",
                    name,
                )
            )
        if unknown:
            out.append(
                Finding(
                    "doctor.dns.unknown",
                    INFO,
                    f"{len(unknown)} DNS check(s) for {name} got no answer",
                    "check the name server ([dns] check_nameserver) and try again",
                    name,
                )
            )
        if not bad and not unknown:
            out.append(Finding("doctor.dns.ok", INFO, f"all DNS checks for {name} pass", "", name))
    return out


def diagnose(
    store: Store,
    settings: SiteConfig,
    *,
    runner: Runner,
    now: int | None = None,
    target: Path | None = None,
    dns_plan: Any = None,
) -> Report:
    """Run every check; ``dns_plan`` (a system.dns.CheckPlan) None skips the DNS checks."""
    now = int(time.time()) if now is None else now
    report = Report()
    steps: list[tuple[str, Any]] = [
        ("maildirs", lambda: maildirs(store, settings, now=now)),
        ("config", lambda: rendered_config(store, settings, target)),
        ("tls", lambda: certificate(settings, now=now) + certificate_names(store, settings)),
        ("ports", lambda: ports(settings)),
        ("queue", lambda: queue(runner, settings, target)),
    ]
    if settings.rspamd.enabled:
        steps.append(("rspamd", lambda: rspamd_health(runner, settings, target)))
    if settings.cluster.role != "all" or settings.store.read_hosts:
        steps.append(("cluster", lambda: cluster(store, settings)))
    if dns_plan is not None:
        steps.append(("dns", lambda: dns_summary(store, settings, dns_plan)))
    for name, step in steps:
        report.checks.append(name)
        report.findings += step()
    return report
