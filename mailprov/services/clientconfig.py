"""``mailprov client-config``: settings for one mailbox, and the files a web server serves."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mailprov.render import clients
from mailprov.render.clients import EMAIL_PLACEHOLDER, ClientSettings, mobileconfig, sheet
from mailprov.rules.addresses import normalise_domain
from mailprov.services.accounts import domain_names, get_domain, get_mailbox
from mailprov.system.files import write_changed

if TYPE_CHECKING:
    from mailprov.settings import SiteConfig
    from mailprov.store import Store

FORMATS = ("text", "thunderbird", "autodiscover", "mobileconfig")


def client_settings(
    store: Store, settings: SiteConfig, address: str, *, now: int
) -> ClientSettings:
    """Where ``address`` (an existing mailbox) connects, from [site] hostname and [ports].

    Raises:
        InvalidAddress / NotFound: not a valid address, or no such mailbox.
    """
    mailbox = get_mailbox(store, address, settings.passwords, now=now)
    return _for(settings, mailbox.address, mailbox.address.partition("@")[2], mailbox.display_name)


def _for(settings: SiteConfig, address: str, domain: str, name: str = "") -> ClientSettings:
    ports = settings.ports
    return ClientSettings(
        address=address,
        domain=domain,
        hostname=normalise_domain(settings.site.hostname),
        imaps=ports.imaps,
        pop3s=ports.pop3s,
        submissions=ports.submissions,
        submission=ports.submission,
        display_name=name,
    )


def document(cs: ClientSettings, fmt: str) -> str:
    """One format for one address (username = the address)."""
    if fmt == "text":
        return sheet(cs)
    if fmt == "thunderbird":
        return clients.thunderbird(cs, username=cs.address)
    if fmt == "autodiscover":
        return clients.autodiscover(cs, username=cs.address)
    if fmt == "mobileconfig":
        return mobileconfig(cs).decode("utf-8")
    msg = f"unknown format {fmt!r}"
    raise ValueError(msg)


@dataclass(frozen=True)
class WebFiles:
    """The files written (or to be written) for the web server."""

    root: Path
    files: dict[Path, str]
    changed: tuple[Path, ...]

    def to_json(self) -> dict[str, object]:
        """JSON-ready data."""
        return {
            "root": str(self.root),
            "files": [str(p) for p in self.files],
            "changed_files": [str(p) for p in self.changed],
        }


def web_certificate(settings: SiteConfig) -> tuple[Path, Path]:
    """The certificate and key the web names are served with: [dns] web_*, else [tls]."""
    dns, tls = settings.dns, settings.tls
    if dns.web_cert_file:
        return settings.resolve_path(dns.web_cert_file), settings.resolve_path(dns.web_key_file)
    return settings.resolve_path(tls.cert_file), settings.resolve_path(tls.key_file)


def web_files(
    store: Store, settings: SiteConfig, root: Path, *, domains: list[str] | None = None
) -> dict[Path, str]:
    """Every file a web server serves for client setup and MTA-STS, by absolute path (pure render).

    Layout under ``root``: ``autoconfig/DOMAIN/mail/config-v1.1.xml``,
    ``autodiscover/DOMAIN/autodiscover/autodiscover.xml``,
    ``mta-sts/DOMAIN/.well-known/mta-sts.txt`` and ``nginx-mailprov.conf``.
    """
    from mailprov.services.dns import record_set  # noqa: PLC0415

    names = [get_domain(store, d).name for d in domains] if domains else domain_names(store)
    out: dict[Path, str] = {}
    sites = []
    for name in names:
        cs = _for(settings, f"{EMAIL_PLACEHOLDER}", normalise_domain(name))
        auto = root / "autoconfig" / name
        disc = root / "autodiscover" / name
        sts = root / "mta-sts" / name
        out[auto / "mail" / "config-v1.1.xml"] = clients.thunderbird(cs, username=EMAIL_PLACEHOLDER)
        out[disc / "autodiscover" / "autodiscover.xml"] = clients.autodiscover(cs, username="")
        out[sts / ".well-known" / "mta-sts.txt"] = record_set(
            store, settings, name, tlsa=False
        ).mta_sts_policy
        sites.append(
            {
                "domain": name,
                "autoconfig_root": str(auto),
                "autodiscover_root": str(disc),
                "mta_sts_root": str(sts),
            }
        )
    cert_file, key_file = web_certificate(settings)
    out[root / "nginx-mailprov.conf"] = clients.nginx(
        sites,
        cert_file=str(cert_file),
        key_file=str(key_file),
        web_host=normalise_domain(settings.dns.web_host or settings.site.hostname),
        http_port=settings.dns.web_http_port,
        https_port=settings.dns.web_https_port,
        serve=clients.serve_proxy(settings),
    )
    return out


def write_web_files(
    store: Store,
    settings: SiteConfig,
    root: Path,
    *,
    domains: list[str] | None = None,
    dry_run: bool = False,
) -> WebFiles:
    """Render the web files and write those that changed (atomically), unless ``dry_run``."""
    files = web_files(store, settings, root, domains=domains)
    return WebFiles(root, files, tuple(write_changed(files, dry_run=dry_run)))
