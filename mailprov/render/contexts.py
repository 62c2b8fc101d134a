"""All template logic: the site config checked, turned into the plain values templates print.

Templates only print values and test flags; everything they show is computed and
validated here. A value that could inject configuration (a newline, ``=``, ``#``,
quotes, spaces where the file format splits on them) is refused with
:class:`~mailprov.errors.ConfigInvalid` naming the setting, before anything is rendered.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailprov.errors import ConfigInvalid, MailprovError
from mailprov.render.opendkim import INSTANCES, instances, postfix_milters
from mailprov.render.tls_profile import tls_profile
from mailprov.rules import passwords

if TYPE_CHECKING:
    from mailprov.settings import SiteConfig

DAY = 86_400

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
HOSTNAME_RE = re.compile(rf"^(?=.{{1,253}}$)(?:{_LABEL}\.)+{_LABEL}$")
# Absolute paths of letters, digits and . _ - + @ / only: nothing a config parser splits on.
PATH_RE = re.compile(r"^/[A-Za-z0-9._+@/-]*$")
NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$")
USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
SIZE_RE = re.compile(r"^[0-9]+[KMG]?$")
RELAYHOST_RE = re.compile(r"^(?:\[[A-Za-z0-9.:-]+\]|[A-Za-z0-9.-]+)(?::[0-9]{1,5})?$")
# Printable ASCII without space, quotes, backslash and '#': safe in both Postfix map
# files and Dovecot's connect string.
SECRET_RE = re.compile(r"^[!$-&(-\[\]-~]+$")

STANDARD_SERVICES = {25: "smtp", 587: "submission", 465: "submissions"}


@dataclass(frozen=True)
class Layout:
    """Where each component's files live (and so how they name each other)."""

    postfix_dir: Path
    dovecot_dir: Path
    systemd_dir: Path
    opendkim_dir: Path
    web_dir: Path

    @classmethod
    def for_target(cls, config: SiteConfig, target: Path | None) -> Layout:
        """The layout under ``target`` (postfix/, dovecot/, systemd/, opendkim/, web/),
        or the configured dirs."""
        if target is not None:
            root = Path(target).absolute()
            return cls(*(root / c for c in COMPONENTS))
        d = config.deploy
        return cls(
            config.resolve_path(d.postfix_dir),
            config.resolve_path(d.dovecot_dir),
            config.resolve_path(d.systemd_dir),
            config.resolve_path(config.dkim.opendkim_dir),
            config.resolve_path(config.dns.web_dir),
        )

    def directory(self, component: str) -> Path:
        """The folder of one component's files (see :data:`COMPONENTS`)."""
        return {
            "postfix": self.postfix_dir,
            "dovecot": self.dovecot_dir,
            "systemd": self.systemd_dir,
            "opendkim": self.opendkim_dir,
            "web": self.web_dir,
        }[component]


#: Every folder deploy writes, in Layout order.
COMPONENTS = ("postfix", "dovecot", "systemd", "opendkim", "web")


@dataclass(frozen=True)
class FileSpec:
    """One rendered file: its component, name, template, and who may read it."""

    component: str
    name: str
    template: str
    secret: bool = False  # names database credentials when the store URL has a password
    group: str | None = None  # group that must read it when it is 0640


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
    FileSpec("dovecot", "dovecot.conf", "dovecot/2.3/dovecot.conf.j2"),
    FileSpec(
        "dovecot",
        "dovecot-sql.conf.ext",
        "dovecot/2.3/dovecot-sql.conf.ext.j2",
        secret=True,
        group="dovecot",
    ),
    FileSpec("systemd", "mailprov-relay.service", "systemd/mailprov-relay.service.j2"),
    FileSpec("systemd", "mailprov-sweep.service", "systemd/mailprov-sweep.service.j2"),
    FileSpec("systemd", "mailprov-sweep.timer", "systemd/mailprov-sweep.timer.j2"),
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
                    "pid_file": check_path(config, "dkim.pid_file", instance.pid_file),
                },
            )
        )
    return out


def _origin(config: SiteConfig, dotted: str) -> str:
    return config.origins.get(dotted, "default")


def _bad(
    config: SiteConfig, dotted: str, value: object, why: str, hint: str | None = None
) -> ConfigInvalid:
    shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "...'"
    return ConfigInvalid(f"{dotted} ({_origin(config, dotted)}) = {shown}: {why}", hint=hint)


def check_hostname(config: SiteConfig, dotted: str, value: str) -> str:
    """A lower-case fully qualified host or domain name, or ConfigInvalid."""
    name = value.strip().lower().rstrip(".")
    if name != value.lower().rstrip(".") or not HOSTNAME_RE.match(name):
        raise _bad(
            config,
            dotted,
            value,
            "not a fully qualified host name",
            hint="use letters, digits and hyphens in dot-separated labels, e.g. mail.example.org",
        )
    return name


def check_path(config: SiteConfig, dotted: str, value: str, *, must_exist: bool = False) -> str:
    """An absolute path (relative ones resolve against the config's folder), or ConfigInvalid."""
    if not value or any(ord(c) < 32 for c in value):
        raise _bad(config, dotted, value, "not a usable path")
    path = str(config.resolve_path(value))
    if not PATH_RE.match(path):
        raise _bad(
            config,
            dotted,
            value,
            "paths may hold only letters, digits and . _ - + @ /",
            hint="move the file to a path without spaces, quotes or other special characters",
        )
    if must_exist and not Path(path).is_file():
        raise _bad(
            config,
            dotted,
            value,
            f"no such file: {path}",
            hint="point it at an existing file; 'mailprov tls self-signed' makes one for tests",
        )
    return path


def _check_re(
    config: SiteConfig, dotted: str, value: str, pattern: re.Pattern[str], what: str
) -> str:
    if not pattern.match(value):
        raise _bad(config, dotted, value, f"not {what}")
    return value


def _listen(config: SiteConfig) -> tuple[str, str, str]:
    """Postfix inet_interfaces, inet_protocols and Dovecot listen, from deploy.listen."""
    listen = config.deploy.listen
    if not listen:
        raise _bad(
            config, "deploy.listen", listen, "needs at least one address", hint='use ["all"]'
        )
    if listen == ["all"]:
        return "all", "all", "*, ::"
    addresses = []
    for raw in listen:
        try:
            addresses.append(ipaddress.ip_address(raw))
        except ValueError:
            raise _bad(config, "deploy.listen", raw, "not an IP address or 'all'") from None
    versions = {a.version for a in addresses}
    protocols = "all" if len(versions) == 2 else ("ipv4" if versions == {4} else "ipv6")
    text = ", ".join(str(a) for a in addresses)
    return text, protocols, text


def _mynetworks(config: SiteConfig) -> str:
    out = []
    for raw in config.postfix.mynetworks:
        try:
            net = ipaddress.ip_network(raw.strip("[]").replace("]/", "/"), strict=False)
        except ValueError:
            raise _bad(
                config, "postfix.mynetworks", raw, "not a network such as 127.0.0.0/8"
            ) from None
        out.append(f"[{net.network_address}]/{net.prefixlen}" if net.version == 6 else str(net))
    if not out:
        raise _bad(
            config, "postfix.mynetworks", [], "needs at least one network", hint="use 127.0.0.0/8"
        )
    return ", ".join(out)


def _store(config: SiteConfig) -> dict[str, Any]:
    from sqlalchemy.engine import make_url  # noqa: PLC0415  (lazy: slow import)

    url = config.store.url
    if not url:
        raise ConfigInvalid(
            "store.url is not set: the mail servers read accounts from the store",
            hint="set store.url in the site config (or pass --store URL)",
        )
    try:
        parsed = make_url(url)
    except Exception:
        raise ConfigInvalid("store.url is not a valid database URL") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        path = check_path(config, "store.url", parsed.database or "")
        return {
            "backend": "sqlite",
            "sqlite_path": path,
            "dovecot_driver": "sqlite",
            "dovecot_connect": path,
            "has_secret": False,
        }
    if backend != "postgresql":
        raise ConfigInvalid(
            f"store.url: the mail servers cannot read a {backend} store",
            hint="use sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DB",
        )
    if parsed.query:
        raise ConfigInvalid(
            "store.url: Postfix and Dovecot cannot use URL options such as "
            + ", ".join(sorted(parsed.query)),
            hint="give the store its own database instead of a search_path option",
        )
    if not parsed.host or not parsed.database or not parsed.username:
        raise ConfigInvalid(
            "store.url must name the PostgreSQL host, user and database",
            hint="e.g. postgresql+psycopg://mailprov@db.example.org:5432/mailprov",
        )
    host = parsed.host
    try:
        host = str(ipaddress.ip_address(host))
    except ValueError:
        host = (
            check_hostname(config, "store.url", host)
            if "." in host
            else _check_re(config, "store.url", host, NAME_RE, "a host name")
        )
    user = _check_re(config, "store.url", parsed.username, NAME_RE, "a plain user name")
    dbname = _check_re(config, "store.url", parsed.database, NAME_RE, "a plain database name")
    password = parsed.password or ""
    if password and not SECRET_RE.match(str(password)):
        raise ConfigInvalid(
            "store.url: the database password holds a space, quote, backslash, '#' or a "
            "non-ASCII character, which the mail servers' config files cannot carry safely",
            hint="choose a database password of printable ASCII without those characters",
        )
    port = parsed.port or 5432
    connect = f"host={host} port={port} dbname={dbname} user={user}"
    if password:
        connect += f" password={password}"
    return {
        "backend": "postgresql",
        "pg_hosts": f"{host}:{port}",
        "pg_dbname": dbname,
        "pg_user": user,
        "pg_password": str(password),
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
    }


def _dkim(config: SiteConfig, layout: Layout) -> dict[str, Any]:
    """The signer's milters for Postfix (empty when [dkim] sign is off)."""
    if not config.dkim.sign:
        return {"milters": "", "opendkim_dir": ""}
    try:
        host = str(ipaddress.ip_address(config.dkim.milter_host))
    except ValueError:
        raise _bad(
            config, "dkim.milter_host", config.dkim.milter_host, "not an IP address"
        ) from None
    for dotted in ("dkim.milter_port", "dkim.ed25519_milter_port"):
        port = getattr(config.dkim, dotted.split(".")[1])
        if not isinstance(port, int) or not 0 < port < 65536:
            raise _bad(config, dotted, port, "not a TCP port")
    milters = postfix_milters(config)
    assert all(m.startswith(f"inet:{host}:") for m in milters)  # noqa: S101
    return {
        "milters": ", ".join(milters),
        "opendkim_dir": check_path(config, "dkim.opendkim_dir", str(layout.opendkim_dir)),
    }


def _service(port: int) -> str:
    return STANDARD_SERVICES.get(port, str(port))


def build_context(config: SiteConfig, layout: Layout) -> dict[str, Any]:
    """The values every template reads, computed and checked from the site config.

    Raises:
        ConfigInvalid: naming the first setting whose value cannot be rendered safely.
    """
    try:
        return _build(config, layout)
    except ConfigInvalid:
        raise
    except MailprovError as exc:  # e.g. an unknown password policy
        raise ConfigInvalid(exc.message, hint=exc.hint) from None


def _build(config: SiteConfig, layout: Layout) -> dict[str, Any]:
    hostname = check_hostname(config, "site.hostname", config.site.hostname)
    domain = config.site.domain or hostname.partition(".")[2]
    domain = check_hostname(config, "site.domain", domain)
    pf, dc = config.postfix, config.dovecot
    for dotted, directory in (
        ("deploy.postfix_dir", layout.postfix_dir),
        ("deploy.dovecot_dir", layout.dovecot_dir),
        ("deploy.systemd_dir", layout.systemd_dir),
    ):
        check_path(config, dotted, str(directory))
    store = _store(config)
    inet_interfaces, inet_protocols, dovecot_listen = _listen(config)
    maillog = check_path(config, "postfix.maillog_file", pf.maillog_file) if pf.maillog_file else ""
    relayhost = (
        _check_re(
            config,
            "postfix.relayhost",
            pf.relayhost,
            RELAYHOST_RE,
            "a relay such as [smtp.example.org]:587",
        )
        if pf.relayhost
        else ""
    )
    if pf.message_size_limit < 1024:
        raise _bad(config, "postfix.message_size_limit", pf.message_size_limit, "too small (bytes)")
    base_dir = check_path(config, "dovecot.base_dir", dc.base_dir)
    if len(base_dir) > 80:
        raise _bad(
            config,
            "dovecot.base_dir",
            dc.base_dir,
            "too long: unix socket paths in it must stay under 108 bytes",
        )
    if not 0 < dc.vmail_uid < 2**31 or not 0 < dc.vmail_gid < 2**31:
        raise _bad(config, "dovecot.vmail_uid", dc.vmail_uid, "must be a non-root uid/gid")
    config_file = str(config.config_file or "/etc/mailprov/mailprov.toml")
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
            )
        },
        "master": {
            name: _service(getattr(config.ports, name)).ljust(9)
            for name in ("smtp", "submission", "submissions")
        },
        "tls": {
            "cert_file": check_path(config, "tls.cert_file", config.tls.cert_file, must_exist=True),
            "key_file": check_path(config, "tls.key_file", config.tls.key_file, must_exist=True),
            **tls_profile(),
        },
        "store": store,
        "sql": _sql(config, store["backend"]),
        "postfix": {
            "version_hint": "3.7",
            "queue_directory": check_path(config, "postfix.queue_directory", pf.queue_directory),
            "data_directory": check_path(config, "postfix.data_directory", pf.data_directory),
            "maillog_file": maillog,
            "maillog_prefix": str(Path(maillog).parent) if maillog else "",
            "inet_interfaces": inet_interfaces,
            "inet_protocols": inet_protocols,
            "mynetworks": _mynetworks(config),
            "relayhost": relayhost,
            "message_size_limit": pf.message_size_limit,
            "dns": pf.dns,
            # An SQL list of checked host names (no quotes can reach it), or empty.
            "unauthenticated_sender_domains": ", ".join(
                f"'{check_hostname(config, 'postfix.unauthenticated_sender_domains', d)}'"
                for d in pf.unauthenticated_sender_domains
            ),
            "map_type": "sqlite" if store["backend"] == "sqlite" else "pgsql",
            "maps": {
                m.replace("-", "_"): str(layout.postfix_dir / f"sql-{m}.cf") for m in POSTFIX_MAPS
            },
        },
        "dovecot": {
            "instance_name": _check_re(
                config, "dovecot.instance_name", dc.instance_name, NAME_RE, "a plain name"
            ),
            "base_dir": base_dir,
            "state_dir": check_path(config, "dovecot.state_dir", dc.state_dir),
            "log_path": check_path(config, "dovecot.log_path", dc.log_path) if dc.log_path else "",
            "listen": dovecot_listen,
            "mail_root": check_path(config, "dovecot.mail_root", dc.mail_root),
            "vmail_user": _check_re(
                config, "dovecot.vmail_user", dc.vmail_user, USER_RE, "a user name"
            ),
            "vmail_uid": dc.vmail_uid,
            "vmail_gid": dc.vmail_gid,
            "auth_worker_vsz_limit": _check_re(
                config,
                "dovecot.auth_worker_vsz_limit",
                dc.auth_worker_vsz_limit,
                SIZE_RE,
                "a size such as 1G",
            ),
            "auth_penalty": dc.auth_penalty,
            "default_pass_scheme": config.passwords.scheme.upper(),
            "sql_conf": str(layout.dovecot_dir / "dovecot-sql.conf.ext"),
            "lmtp_socket": f"{base_dir}/lmtp",
            "auth_socket": f"{base_dir}/auth-postfix",
            "quota_status_socket": f"{base_dir}/quota-status",
        },
        "dkim": _dkim(config, layout),
        "systemd": {
            "mailprov_command": check_path(
                config, "deploy.mailprov_command", config.deploy.mailprov_command
            ),
            "config_file": check_path(config, "config_file", config_file),
        },
    }
