"""All template logic: the site config turned into the plain values templates print.

Templates only print values and test flags; everything they show is computed
here. The values come from a loaded :class:`~mailprov.settings.SiteConfig`, whose
every setting was checked when it loaded (:mod:`mailprov.settings`), so nothing
here checks them again. What is left is what only rendering knows: the
``--target`` folder's path, that the certificate files exist on this host, and
that the store URL is one the mail servers themselves can use.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import make_url

from mailprov.errors import ConfigInvalid
from mailprov.render.cluster import context as cluster_context
from mailprov.render.opendkim import INSTANCES, instances, postfix_milters
from mailprov.render.rspamd import context as rspamd_context
from mailprov.render.rspamd import learning as rspamd_learning
from mailprov.render.rspamd import milter as rspamd_milter
from mailprov.render.rspamd import unit_context as rspamd_unit_context
from mailprov.render.spam import SCRIPT as SPAM_SCRIPT
from mailprov.render.spam import context as spam_context
from mailprov.render.spam import enabled as spam_enabled
from mailprov.render.tls_profile import tls_profile
from mailprov.render.units import systemd_context
from mailprov.rules import hashing, passwords
from mailprov.settings.checks import Invalid, parse_db_host, server_path

if TYPE_CHECKING:
    from mailprov.settings import SiteConfig

DAY = 86_400

STANDARD_SERVICES = {25: "smtp", 587: "submission", 465: "submissions"}


@dataclass(frozen=True)
class Layout:
    """Where each component's files live (and so how they name each other)."""

    postfix_dir: Path
    dovecot_dir: Path
    systemd_dir: Path
    opendkim_dir: Path
    web_dir: Path
    rspamd_dir: Path

    @classmethod
    def for_target(cls, config: SiteConfig, target: Path | None) -> Layout:
        """The layout under ``target`` (postfix/, dovecot/, systemd/, opendkim/, web/, rspamd/),
        or the configured dirs."""
        if target is not None:
            root = check_target(target)
            return cls(*(root / c for c in COMPONENTS))
        d = config.deploy
        return cls(
            config.resolve_path(d.postfix_dir),
            config.resolve_path(d.dovecot_dir),
            config.resolve_path(d.systemd_dir),
            config.resolve_path(config.dkim.opendkim_dir),
            config.resolve_path(config.dns.web_dir),
            config.resolve_path(config.rspamd.config_dir),
        )

    def directory(self, component: str) -> Path:
        """The folder of one component's files (see :data:`COMPONENTS`)."""
        return {
            "postfix": self.postfix_dir,
            "dovecot": self.dovecot_dir,
            "systemd": self.systemd_dir,
            "opendkim": self.opendkim_dir,
            "web": self.web_dir,
            "rspamd": self.rspamd_dir,
        }[component]


#: Every folder deploy writes, in Layout order.
COMPONENTS = ("postfix", "dovecot", "systemd", "opendkim", "web", "rspamd")


@dataclass(frozen=True)
class FileSpec:
    """One rendered file: its component, name, template, and who may read it."""

    component: str
    name: str
    template: str
    secret: bool = False  # names database credentials when the store URL has a password
    group: str | None = None  # group that must read it when it is 0640
    #: Rendered only for site configs this accepts (None: always).
    when: Callable[[SiteConfig], bool] | None = None


def frontend(config: SiteConfig) -> bool:
    """``[cluster] role = "frontend"``: mail goes on to the backends (sql-transport.cf)."""
    return config.cluster.role == "frontend"


def portal_login(config: SiteConfig) -> bool:
    """``[passwords] temporary_login = "portal"``: mail clients refuse a temporary password."""
    return config.passwords.temporary_login == "portal"


POSTFIX_MAPS = (
    "domains",
    "mailboxes",
    "aliases",
    "catchall",
    "sender-login",
    "quota-limited",
    "local-sender",
)

FILES: tuple[FileSpec, ...] = (
    FileSpec("postfix", "main.cf", "postfix/main.cf.j2"),
    FileSpec("postfix", "master.cf", "postfix/master.cf.j2"),
    *(
        FileSpec("postfix", f"sql-{m}.cf", f"postfix/sql-{m}.cf.j2", secret=True, group="postfix")
        for m in POSTFIX_MAPS
    ),
    FileSpec(
        "postfix",
        "sql-transport.cf",
        "postfix/sql-transport.cf.j2",
        secret=True,
        group="postfix",
        when=frontend,
    ),
    FileSpec("dovecot", "dovecot.conf", "dovecot/2.3/dovecot.conf.j2"),
    FileSpec(
        "dovecot",
        "dovecot-sql.conf.ext",
        "dovecot/2.3/dovecot-sql.conf.ext.j2",
        secret=True,
        group="dovecot",
    ),
    FileSpec(
        "dovecot",
        "dovecot-app-passwords.conf.ext",
        "dovecot/2.3/dovecot-app-passwords.conf.ext.j2",
        secret=True,
        group="dovecot",
    ),
    FileSpec(
        "dovecot",
        "dovecot-sql-temporary.conf.ext",
        "dovecot/2.3/dovecot-sql-temporary.conf.ext.j2",
        secret=True,
        group="dovecot",
        when=portal_login,
    ),
    FileSpec("dovecot", SPAM_SCRIPT, "dovecot/2.3/spam-to-junk.sieve.j2", when=spam_enabled),
    FileSpec("systemd", "mailprov-relay.service", "systemd/mailprov-relay.service.j2"),
    FileSpec("systemd", "mailprov-sweep.service", "systemd/mailprov-sweep.service.j2"),
    FileSpec("systemd", "mailprov-sweep.timer", "systemd/mailprov-sweep.timer.j2"),
    FileSpec("systemd", "mailprov-serve.service", "systemd/mailprov-serve.service.j2"),
)

#: The OpenDKIM units, one per [dkim] algorithm (rendered only when [dkim] sign is on).
OPENDKIM_UNIT = "systemd/mailprov-opendkim.service.j2"


def signer_units(config: SiteConfig) -> list[tuple[str, dict[str, Any]]]:
    """(unit file name, template values) of each OpenDKIM instance deploy runs."""
    if not config.dkim.sign:
        return []
    out = []
    for instance in instances(config):
        suffix = INSTANCES[instance.algorithm][1]
        out.append(
            (
                f"mailprov-opendkim{suffix}.service",
                {
                    "algorithm": instance.algorithm,
                    "conf_name": f"opendkim{suffix}.conf",
                    "pid_file": instance.pid_file,
                },
            )
        )
    return out


def check_target(target: Path) -> Path:
    """``--target DIR`` made absolute; its path is written into the files, so it must be safe.

    Raises:
        ConfigInvalid: the folder's path holds characters the servers' configs cannot carry.
    """
    root = Path(target).absolute()
    try:
        server_path(str(root), root)
    except Invalid as exc:
        raise ConfigInvalid(f"--target {str(root)[:80]!r}: {exc.why}", hint=exc.hint) from None
    return root


def _existing_file(config: SiteConfig, dotted: str, value: str) -> str:
    """A file the servers read at start (checked on this host, where it is used)."""
    path = config.resolve_path(value)
    if not path.is_file():
        origin = config.origins.get(dotted, "default")
        raise ConfigInvalid(
            f"{dotted} ({origin}) = {value!r:.80}: no such file: {path}",
            hint="point it at an existing file; 'mailprov tls self-signed' makes one for tests",
        )
    return str(path)


def _listen(config: SiteConfig) -> tuple[str, str, str]:
    """Postfix inet_interfaces, inet_protocols and Dovecot listen, from deploy.listen."""
    listen = config.deploy.listen
    if listen == ["all"]:
        return "all", "all", "*, ::"
    versions = {ipaddress.ip_address(a).version for a in listen}
    protocols = "all" if len(versions) == 2 else ("ipv4" if versions == {4} else "ipv6")
    text = ", ".join(listen)
    return text, protocols, text


def _mynetworks(config: SiteConfig) -> str:
    """Postfix's form: IPv6 networks in brackets."""
    out = []
    for raw in config.postfix.mynetworks:
        net = ipaddress.ip_network(raw.strip("[]").replace("]/", "/"), strict=False)
        out.append(f"[{net.network_address}]/{net.prefixlen}" if net.version == 6 else str(net))
    return ", ".join(out)


def _store(config: SiteConfig) -> dict[str, Any]:
    """The SQL maps' and Dovecot's view of the store (its URL was checked at load)."""
    url = config.store.url
    if not url:
        raise ConfigInvalid(
            "store.url is not set: the mail servers read accounts from the store",
            hint="set store.url in the site config (or pass --store URL)",
        )
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database or ""
        if not path.startswith("/"):
            raise ConfigInvalid(
                "store.url: the mail servers cannot read an in-memory SQLite store",
                hint="use sqlite:///PATH with a file",
            )
        return {
            "backend": "sqlite",
            "sqlite_path": path,
            "dovecot_driver": "sqlite",
            "dovecot_connect": path,
            "has_secret": False,
        }
    if parsed.query:
        # Fine for mailprov's own connections, but Postfix and Dovecot have no way to apply them.
        raise ConfigInvalid(
            "store.url: Postfix and Dovecot cannot use URL options such as "
            + ", ".join(sorted(parsed.query)),
            hint="give the store its own database instead of a search_path option",
        )
    host = str(parsed.host)
    try:
        host = str(ipaddress.ip_address(host))
    except ValueError:
        host = host.lower()
    user, dbname = str(parsed.username), str(parsed.database)
    password = str(parsed.password or "")
    port = parsed.port or 5432
    # Reads go to [store] read_hosts (replicas) when set; the consistency check made their
    # ports equal, since Dovecot's connect string has one port= for all its host= entries.
    reads = [parse_db_host(h, port) for h in config.store.read_hosts] or [(host, port)]
    port = reads[0][1]
    connect = " ".join(f"host={h}" for h, _ in reads) + f" port={port} dbname={dbname} user={user}"
    if password:
        connect += f" password={password}"
    return {
        "backend": "postgresql",
        # Postfix tries these in random order and skips one that is down (pgsql_table(5)).
        "pg_hosts": " ".join(f"{h}:{p}" for h, p in reads),
        "pg_dbname": dbname,
        "pg_user": user,
        "pg_password": password,
        "dovecot_driver": "pgsql",
        "dovecot_connect": connect,
        "has_secret": bool(password),
    }


def _sql(config: SiteConfig, backend: str) -> dict[str, Any]:
    max_age_days = None
    if config.passwords.enforce_max_age:
        policy = passwords.get_policy(config.passwords.policy)
        max_age_days = config.passwords.max_age_days or policy.max_age_days
    if backend == "sqlite":
        # '%%' is a literal '%' for Dovecot's variable expansion.
        now = "CAST(strftime('%%s', 'now') AS INTEGER)"
        base = (
            "CASE WHEN instr('%u', '+') > 0 THEN substr('%u', 1, instr('%u', '+') - 1) "
            "ELSE '%u' END"
        )
    else:
        now = "CAST(EXTRACT(EPOCH FROM now()) AS BIGINT)"
        base = "split_part('%u', '+', 1)"
    return {
        "now": now,
        "base_local_part": base,
        "max_age_days": max_age_days or 0,
        "max_age_seconds": (max_age_days or 0) * DAY,
        "temporary_reason": _temporary_reason(config) if portal_login(config) else "",
    }


def _temporary_reason(config: SiteConfig) -> str:
    """What a mail client shows for a temporary password, as a Dovecot SQL string literal.

    The URL was checked when it loaded (no quote, '%' or backslash can be in it);
    quoting here keeps the literal safe regardless.
    """
    text = f"Your password is temporary: set your own at {config.portal_url()} first"
    return "'" + text.replace("'", "''").replace("%", "%%") + "'"


def _dkim(config: SiteConfig, layout: Layout) -> dict[str, Any]:
    """The signer's milters for Postfix (empty when [dkim] sign is off)."""
    if not config.dkim.sign:
        return {"milters": "", "opendkim_dir": ""}
    return {
        "milters": ", ".join(postfix_milters(config)),
        "opendkim_dir": str(layout.opendkim_dir),
    }


def submission_host(config: SiteConfig) -> str:
    """Where Dovecot hands Postfix the mail Sieve sends (replies, redirects): HOST:PORT.

    Postfix's own SMTP port on a loopback address it listens on (the first listen
    address when none is loopback), so the sender is inside [postfix] mynetworks.
    """
    listen = config.deploy.listen
    loopback = [a for a in listen if a != "all" and ipaddress.ip_address(a).is_loopback]
    host = "127.0.0.1" if listen == ["all"] else (loopback or listen)[0]
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{config.ports.smtp}"


def _sieve(config: SiteConfig) -> dict[str, Any]:
    dc = config.dovecot
    return {
        "submission_host": submission_host(config),
        "max_script_size": dc.sieve_max_script_size,
        "max_redirects": dc.sieve_max_redirects,
    }


def _milters(config: SiteConfig, dkim: dict[str, Any]) -> dict[str, str]:
    """Postfix's milter lists when rspamd is on (empty strings when it is off).

    Port 25 (``smtpd``): rspamd first, with default_action = tempfail (README, "Inbound
    protection (rspamd)"), then the signers. Submission: rspamd with default_action =
    accept, then the signers. Local submission (``non_smtpd``): the signers only.
    """
    if not config.rspamd.enabled:
        return {"smtpd": "", "submission": "", "non_smtpd": ""}
    socket = rspamd_milter(config)
    signers = f", {dkim['milters']}" if dkim["milters"] else ""
    return {
        "smtpd": f"{{ {socket}, default_action=tempfail }}{signers}",
        "submission": f"{{ {socket}, default_action=accept }}{signers}",
        "non_smtpd": dkim["milters"],
    }


def _doveadm(config: SiteConfig) -> dict[str, Any]:
    """Dovecot's doveadm protocol between hosts, for ``mailbox move`` (empty: not set up).

    Every host of a cluster gets the password and port (the doveadm client on the host
    that runs ``mailbox move`` needs them); a backend also listens, on its own host.
    """
    cluster = config.cluster
    if cluster.role == "all" or not cluster.doveadm_password_file:
        return {}
    listen = cluster.backend_hosts().get(cluster.name, "") if cluster.role == "backend" else ""
    return {
        "port": cluster.doveadm_port,
        "password_file": str(config.resolve_path(cluster.doveadm_password_file)),
        "listen": listen,
    }


def _service(port: int) -> str:
    return STANDARD_SERVICES.get(port, str(port))


def build_context(config: SiteConfig, layout: Layout) -> dict[str, Any]:
    """The values every template reads, computed from the (already checked) site config.

    Raises:
        ConfigInvalid: the store or a certificate file cannot serve the mail servers.
    """
    hostname = config.site.hostname
    domain = config.site.mail_domain
    pf, dc = config.postfix, config.dovecot
    path = config.resolve_path
    store = _store(config)
    inet_interfaces, inet_protocols, dovecot_listen = _listen(config)
    maillog = str(path(pf.maillog_file)) if pf.maillog_file else ""
    base_dir = str(path(dc.base_dir))
    config_file = str(config.config_file or "/etc/mailprov/mailprov.toml")
    dkim = _dkim(config, layout)
    rspamd = rspamd_context(config, str(layout.rspamd_dir))
    return {
        "site": {"hostname": hostname, "domain": domain},
        "ports": {
            name: getattr(config.ports, name)
            for name in (
                "smtp",
                "submission",
                "submissions",
                "imap",
                "imaps",
                "pop3",
                "pop3s",
                "lmtp",
                "managesieve",
                "quota_status",
            )
        },
        "master": {
            name: _service(getattr(config.ports, name)).ljust(9)
            for name in ("smtp", "submission", "submissions")
        },
        "tls": {
            "cert_file": _existing_file(config, "tls.cert_file", config.tls.cert_file),
            "key_file": _existing_file(config, "tls.key_file", config.tls.key_file),
            **tls_profile(),
        },
        "store": store,
        "sql": _sql(config, store["backend"]),
        "postfix": {
            "version_hint": "3.7",
            "queue_directory": str(path(pf.queue_directory)),
            "data_directory": str(path(pf.data_directory)),
            "maillog_file": maillog,
            "maillog_prefix": str(Path(maillog).parent) if maillog else "",
            "inet_interfaces": inet_interfaces,
            "inet_protocols": inet_protocols,
            "mynetworks": _mynetworks(config),
            "relayhost": pf.relayhost,
            "message_size_limit": pf.message_size_limit,
            "dns": pf.dns,
            # An SQL list of checked host names (no quotes can reach it), or empty.
            "unauthenticated_sender_domains": ", ".join(
                f"'{d}'" for d in pf.unauthenticated_sender_domains
            ),
            "map_type": "sqlite" if store["backend"] == "sqlite" else "pgsql",
            "maps": {
                m.replace("-", "_"): str(layout.postfix_dir / f"sql-{m}.cf")
                for m in (*POSTFIX_MAPS, "transport")
            },
        },
        "dovecot": {
            "instance_name": dc.instance_name,
            "base_dir": base_dir,
            "state_dir": str(path(dc.state_dir)),
            "log_path": str(path(dc.log_path)) if dc.log_path else "",
            "listen": dovecot_listen,
            "mail_root": str(path(dc.mail_root)),
            "vmail_user": dc.vmail_user,
            "vmail_uid": dc.vmail_uid,
            "vmail_gid": dc.vmail_gid,
            "auth_worker_vsz_limit": dc.auth_worker_vsz_limit,
            "auth_penalty": dc.auth_penalty,
            "default_pass_scheme": config.passwords.scheme,
            "sql_conf": str(layout.dovecot_dir / "dovecot-sql.conf.ext"),
            "app_passwords_conf": str(layout.dovecot_dir / "dovecot-app-passwords.conf.ext"),
            "app_password_scheme": hashing.APP_PASSWORD_SCHEME,
            "app_password_prefix": "{" + hashing.APP_PASSWORD_SCHEME + "}",
            "temporary_login": portal_login(config),
            "temporary_sql_conf": str(layout.dovecot_dir / "dovecot-sql-temporary.conf.ext"),
            "lmtp_socket": f"{base_dir}/lmtp",
            "auth_socket": f"{base_dir}/auth-postfix",
            "quota_status_socket": f"{base_dir}/quota-status",
        },
        "sieve": _sieve(config),
        "spam": spam_context(config, layout.dovecot_dir),
        "cluster": cluster_context(config),
        "doveadm": _doveadm(config),
        "dkim": dkim,
        "rspamd": rspamd,
        "imapsieve": rspamd_learning(config, str(layout.dovecot_dir)),
        "milters": _milters(config, dkim),
        "systemd": {
            **systemd_context(
                config,
                store,
                mailprov_command=str(path(config.deploy.mailprov_command)),
                config_file=config_file,
                signer_user=config.dkim.signer_user if config.dkim.sign else "",
            ),
            "rspamd": rspamd_unit_context(config, rspamd),
        },
    }
