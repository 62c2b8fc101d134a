"""Rules that tie settings together, checked once every layer is in.

Each value has already passed its own check (:mod:`mailprov.settings.kinds`);
what is left is what one value cannot say alone: a list that must not be empty,
two ports that must differ, a mode that needs another setting.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from mailprov.errors import MailprovError
from mailprov.rules.assurance import FRAMEWORK_LEVELS
from mailprov.rules.passwords import get_policy
from mailprov.settings import checks
from mailprov.settings.checks import Invalid

if TYPE_CHECKING:
    from mailprov.settings.sections import SiteConfig


class Inconsistent(Invalid):
    """A setting that does not fit with the others; ``dotted`` names it."""

    def __init__(self, dotted: str, value: object, why: str, hint: str | None = None) -> None:
        super().__init__(why, hint)
        self.dotted = dotted
        self.value = value


def check(config: SiteConfig) -> None:
    """Raise :class:`Inconsistent` for the first rule the settings break together."""
    _site(config)
    _store(config)
    _cluster(config)
    _passwords(config)
    _deploy(config)
    _dkim(config)
    _dns(config)
    _relay(config)
    _web(config)
    _oidc(config)


def _site(config: SiteConfig) -> None:
    site = config.site
    if not site.domain and site.hostname.count(".") < 2:
        raise Inconsistent(
            "site.domain",
            "",
            f"is not set and cannot be derived from [site] hostname {site.hostname!r} "
            "(it would be the top-level domain)",
            hint="set [site] domain, e.g. domain = 'example.org'",
        )


def _store(config: SiteConfig) -> None:
    url = config.store.url
    if url:
        try:
            checks.store_url(url, config.base_dir)
        except Invalid as exc:
            raise Inconsistent("store.url", url, exc.why, exc.hint) from None
    _read_hosts(config)


def _cluster(config: SiteConfig) -> None:
    cluster = config.cluster
    hosts = cluster.backend_hosts()
    names = [entry.split("=", 1)[0] for entry in cluster.backends]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise Inconsistent(
            "cluster.backends",
            cluster.backends,
            f"names backend {twice[0]!r} more than once",
            hint="give each backend one NAME=HOST entry",
        )
    if cluster.role == "all":
        if hosts:
            raise Inconsistent(
                "cluster.backends",
                cluster.backends,
                "lists backends, but this host's role is 'all' (it stores every mailbox itself)",
                hint="set [cluster] role to 'frontend' or 'backend', or remove the backends",
            )
        return
    if not config.store.url.startswith("postgresql"):
        raise Inconsistent(
            "cluster.role",
            cluster.role,
            "needs a store every mail host reaches: the hosts of one site share a PostgreSQL "
            "store, and this store.url is not PostgreSQL",
            hint="move the store to PostgreSQL (mailprov backup, then restore with a PostgreSQL"
            " store.url), or keep role = 'all'",
        )
    if not hosts:
        raise Inconsistent(
            "cluster.backends",
            [],
            f"is empty, but this host's role is {cluster.role!r}",
            hint="list every backend as NAME=HOST, e.g. backends = ['backend-1=10.0.0.2']",
        )
    for dotted, name in (
        ("cluster.default_backend", cluster.default_backend),
        ("cluster.name", cluster.name),
    ):
        if name and name not in hosts:
            raise Inconsistent(
                dotted,
                name,
                "is not one of [cluster] backends",
                hint=f"use one of: {', '.join(hosts)}",
            )
    if cluster.role == "backend" and not cluster.name:
        raise Inconsistent(
            "cluster.name",
            "",
            "is not set, but this host's role is 'backend'",
            hint=f"set it to this host's name among the backends: {', '.join(hosts)}",
        )
    if cluster.role == "backend" and not cluster.frontends:
        raise Inconsistent(
            "cluster.frontends",
            [],
            "is empty, but this host's role is 'backend': no frontend could log in or deliver",
            hint="list the networks the frontends connect from, e.g. frontends = ['10.0.0.1/32']",
        )


def _read_hosts(config: SiteConfig) -> None:
    hosts = config.store.read_hosts
    if not hosts:
        return
    if not config.store.url.startswith("postgresql"):
        raise Inconsistent(
            "store.read_hosts",
            hosts,
            "only a PostgreSQL store has replicas to read from; this store.url is not PostgreSQL",
            hint="remove store.read_hosts, or move the store to PostgreSQL",
        )
    # Lazy: SQLAlchemy is heavy, and every command module loads settings at import.
    from sqlalchemy.engine import make_url  # noqa: PLC0415  (lazy: heavy)

    default_port = make_url(config.store.url).port or 5432
    ports = {checks.parse_db_host(h, default_port)[1] for h in hosts}
    if len(ports) > 1:
        # Dovecot's connect string takes several host= but one port= for all of them.
        raise Inconsistent(
            "store.read_hosts",
            hosts,
            "the read hosts listen on different ports, and Dovecot's connect string has one "
            "port for all hosts",
            hint="run the replicas on one port (e.g. 5432 on each host)",
        )


def _passwords(config: SiteConfig) -> None:
    pw = config.passwords
    try:
        get_policy(pw.policy, min_length=pw.min_length or None)
    except MailprovError as exc:
        raise Inconsistent("passwords.min_length", pw.min_length, exc.message, exc.hint) from None


def _deploy(config: SiteConfig) -> None:
    listen = config.deploy.listen
    if not listen or ("all" in listen and len(listen) > 1):
        raise Inconsistent(
            "deploy.listen",
            listen,
            "needs either 'all' alone or one or more IP addresses",
            hint='e.g. ["all"] or ["127.0.0.1", "::1"]',
        )
    if not config.postfix.mynetworks:
        raise Inconsistent(
            "postfix.mynetworks", [], "needs at least one network", hint='use ["127.0.0.0/8"]'
        )


def _dkim(config: SiteConfig) -> None:
    dk = config.dkim
    if not dk.algorithms or len(set(dk.algorithms)) != len(dk.algorithms):
        raise Inconsistent(
            "dkim.algorithms",
            dk.algorithms,
            "must list each algorithm at most once, and at least one",
            hint='e.g. algorithms = ["rsa-2048", "ed25519"]',
        )
    if len(dk.algorithms) > 1 and dk.milter_port == dk.ed25519_milter_port:
        raise Inconsistent(
            "dkim.ed25519_milter_port",
            dk.ed25519_milter_port,
            "is dkim.milter_port too: each signing instance needs its own port",
            hint="e.g. milter_port = 8891, ed25519_milter_port = 8892",
        )


def _dns(config: SiteConfig) -> None:
    d = config.dns
    if bool(d.web_cert_file) != bool(d.web_key_file):
        raise Inconsistent(
            "dns.web_cert_file" if d.web_key_file else "dns.web_key_file",
            d.web_cert_file or d.web_key_file,
            "the web certificate needs both dns.web_cert_file and dns.web_key_file",
            hint="set both, or neither (then [tls] cert_file and key_file serve the web names)",
        )


def _relay(config: SiteConfig) -> None:
    r = config.relay
    if r.tls == "files" and not (r.tls_cert_file and r.tls_key_file):
        raise Inconsistent(
            "relay.tls",
            r.tls,
            "'files' needs relay.tls_cert_file and relay.tls_key_file",
            hint="set both, or use tls = 'generate'",
        )
    if r.mode == "forward" and not r.smarthost_host:
        raise Inconsistent(
            "relay.smarthost_host",
            r.smarthost_host,
            "relay.mode = 'forward' needs relay.smarthost_host (and _port)",
            hint="name the smarthost, e.g. smarthost_host = 'smtp.example.org'",
        )
    if r.smarthost_username and not r.smarthost_password_file:
        raise Inconsistent(
            "relay.smarthost_password_file",
            "",
            "relay.smarthost_username is set but relay.smarthost_password_file is not",
            hint="put the password alone in a file readable only by the relay (0600)",
        )


def _web(config: SiteConfig) -> None:
    w = config.web
    host, _ = checks.parse_endpoint(w.listen)
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback and not w.tls:
        raise Inconsistent(
            "web.listen",
            w.listen,
            "serves plain HTTP beyond loopback: passwords and session cookies would cross "
            "the network in clear",
            hint="listen on 127.0.0.1 behind the nginx snippet 'deploy' renders "
            "(nginx-mailprov.conf), or set [web] tls = true to serve HTTPS directly",
        )


def _oidc(config: SiteConfig) -> None:
    o = config.oidc
    if o.issuer:
        for name in ("client_id", "redirect_url"):
            if not getattr(o, name):
                raise Inconsistent(
                    f"oidc.{name}",
                    "",
                    f"oidc.issuer is set but oidc.{name} is not",
                    hint="register mailprov at the provider and copy its client id and the "
                    "callback URL (…/api/v1/identity/oidc/callback) here",
                )
        if "openid" not in o.scopes:
            raise Inconsistent(
                "oidc.scopes",
                o.scopes,
                "must include 'openid' (without it the provider sends no ID token)",
                hint='e.g. scopes = ["openid"]',
            )
    if o.min_assurance_level:
        if not o.trust_framework:
            raise Inconsistent(
                "oidc.min_assurance_level",
                o.min_assurance_level,
                "needs oidc.trust_framework (a level means something only in its framework)",
                hint='e.g. trust_framework = "ru_esia", min_assurance_level = "confirmed"',
            )
        levels = FRAMEWORK_LEVELS[o.trust_framework]
        if o.min_assurance_level not in levels:
            raise Inconsistent(
                "oidc.min_assurance_level",
                o.min_assurance_level,
                f"is not a level of {o.trust_framework}",
                hint="levels, lowest first: " + ", ".join(levels),
            )
