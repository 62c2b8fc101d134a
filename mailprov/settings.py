"""The site configuration: layered, validated, frozen, and aware of where each value came from.

Layers, lowest first: built-in defaults < the TOML file < ``MAILPROV_<SECTION>_<KEY>``
environment variables < command-line flags. ``config show --origin`` prints
the layer each value came from.

The config file is the first of:

1. ``--config FILE`` (an error if FILE does not exist);
2. the ``MAILPROV_CONFIG`` environment variable (likewise);
3. ``./mailprov.toml`` in the current directory;
4. ``/etc/mailprov/mailprov.toml``.

If none exists, only defaults, environment and flags apply. Relative paths in
the file (and ``sqlite:///relative.sqlite`` store URLs) are relative to the
file's own folder, so a site folder can be moved as a whole.

Each section is a frozen dataclass below; a new section is one dataclass and one
field of :class:`SiteConfig`, and the loader, ``config show`` and the
environment layer pick it up from the field's type.
"""

from __future__ import annotations

import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

from mailprov.errors import ConfigInvalid, MailprovError

CONFIG_ENV = "MAILPROV_CONFIG"
CONFIG_NAME = "mailprov.toml"
SYSTEM_CONFIG = Path("/etc/mailprov/mailprov.toml")


@dataclass(frozen=True)
class SiteSection:
    """[site]: who this mail host is."""

    hostname: str = "mail.example.test"
    domain: str = ""


@dataclass(frozen=True)
class StoreSection:
    """[store]: where the account store lives."""

    url: str = ""


@dataclass(frozen=True)
class PasswordsSection:
    """[passwords]: policy, hash scheme and temporary-password lifetime."""

    policy: str = "source"
    scheme: str = "ARGON2ID"
    min_length: int = 0
    max_age_days: int = 0
    enforce_max_age: bool = False
    temp_password_hours: int = 72
    generated_length: int = 16


@dataclass(frozen=True)
class TlsSection:
    """[tls]: the certificate the mail servers present (e.g. Let's Encrypt's paths)."""

    cert_file: str = "/etc/ssl/certs/ssl-cert-snakeoil.pem"
    key_file: str = "/etc/ssl/private/ssl-cert-snakeoil.key"


@dataclass(frozen=True)
class PortsSection:
    """[ports]: where the mail services listen (and what clients are told to use)."""

    smtp: int = 25
    submission: int = 587
    submissions: int = 465
    imap: int = 143
    imaps: int = 993
    pop3: int = 110
    pop3s: int = 995
    lmtp: int = 24


@dataclass(frozen=True)
class AccountsSection:
    """[accounts]: defaults for new mailboxes."""

    default_quota: str = "0"


# -- sections of config rendering and deploy (issue 3) go here --------------------


@dataclass(frozen=True)
class DeploySection:
    """[deploy]: where rendered files are installed, and the host-wide choices they share."""

    postfix_dir: str = "/etc/postfix"
    dovecot_dir: str = "/etc/dovecot"
    systemd_dir: str = "/etc/systemd/system"
    # Manifest (checksums of what was installed) and the previous set for 'deploy rollback'.
    state_dir: str = "/var/lib/mailprov/deploy"
    # Addresses the mail services listen on; "all" means every interface.
    listen: list[str] = field(default_factory=lambda: ["all"])
    # The mailprov command the systemd units run (and the config file they pass).
    mailprov_command: str = "/usr/local/bin/mailprov"


@dataclass(frozen=True)
class PostfixSection:
    """[postfix]: Postfix's own folders and relaying choices."""

    queue_directory: str = "/var/spool/postfix"
    data_directory: str = "/var/lib/postfix"
    # Empty: log to syslog. A path: log through postlogd into that file.
    maillog_file: str = ""
    # Clients in these networks may relay without AUTH (keep it to this host).
    mynetworks: list[str] = field(default_factory=lambda: ["127.0.0.0/8", "[::1]/128"])
    # Empty: deliver outbound mail by MX lookup. "[host]:port": send it all there.
    relayhost: str = ""
    message_size_limit: int = 52_428_800
    # Off only for offline test rigs: DNS-based checks and MX lookups need a resolver.
    dns: bool = True
    # Local domains whose addresses clients that did not log in (and are outside
    # mynetworks) may still use as envelope sender on port 25, e.g. for an outside
    # newsletter service. Every other local domain's sender needs AUTH.
    unauthenticated_sender_domains: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DovecotSection:
    """[dovecot]: Dovecot's folders, the vmail owner, and auth tuning."""

    base_dir: str = "/run/dovecot"
    state_dir: str = "/var/lib/dovecot"
    # Empty: log to syslog.
    log_path: str = ""
    instance_name: str = "dovecot"
    # Maildirs live in MAIL_ROOT/<domain>/<local part>/Maildir, owned by the vmail user.
    mail_root: str = "/var/vmail"
    vmail_user: str = "vmail"
    vmail_uid: int = 5000
    vmail_gid: int = 5000
    # ARGON2ID needs memory in the auth worker (64 MiB per hash at our parameters).
    auth_worker_vsz_limit: str = "1G"
    # Off only in test profiles: the per-IP delay after failed logins slows tests down.
    auth_penalty: bool = True


# -- sections of the identity gate (issue 4) go here -------------------------------


@dataclass(frozen=True)
class IdentitySection:
    """[identity]: the identity gate's policy (see ../shared/IDENTITY.md)."""

    # The code pepper: >= 32 random bytes in a file outside the store, created
    # 0600 on first use. Rotating it invalidates the live codes, nothing else.
    pepper_file: str = "identity-pepper"
    token_type: str = "mailprov-idv+jwt"  # noqa: S105  (a JWT "typ", not a secret)
    request_ttl_hours: int = 24
    code_ttl_seconds: int = 600
    code_attempts: int = 5
    resend_seconds: int = 60
    codes_per_hour: int = 5
    challenge_ttl_seconds: int = 300
    max_verification_age_days: int = 1095
    required_claims: list[str] = field(
        default_factory=lambda: ["family_name", "given_name", "birthdate"]
    )
    match_yo_as_ye: bool = True
    extra_ekus: list[str] = field(default_factory=list)
    max_chain_depth: int = 4


@dataclass(frozen=True)
class NotifySection:
    """[notify]: how codes and notices reach the recovery contact."""

    # SMTP through a smarthost (aiosmtplib) ...
    smarthost: str = ""
    port: int = 25
    starttls: bool = False
    username: str = ""
    password_file: str = ""
    sender: str = "mailprov@localhost"
    # ... or a hook command (an SMS gateway script) that reads the destination and
    # the message on stdin, never argv. Split like a shell would; no shell is run.
    hook: str = ""
    timeout_seconds: float = 15.0


# -- sections of the relay (issue 5) go here -----------------------------------------


@dataclass(frozen=True)
class RelaySection:
    """[relay]: the local SMTP relay for test rigs (``mailprov relay serve``).

    ``mode`` is ``capture`` (store everything, one mailbox per recipient and AUTH
    user), ``deliver`` (provisioned mailboxes only, into their Maildir or over
    LMTP) or ``forward`` (to the smarthost, replying with its answers). Secrets
    never live here: the smarthost password is read from ``smarthost_password_file``.
    """

    listen: str = "127.0.0.1:2525"
    hostname: str = ""
    mode: str = "capture"
    storage_dir: str = "relay"
    max_messages: int = 50_000
    max_age_hours: int = 168
    max_bytes: str = "1G"
    size_limit: str = "25M"
    max_recipients: int = 100
    require_auth: bool = False
    allow_auth_without_tls: bool = False
    credentials_file: str = ""
    tls: str = "generate"
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_listen: str = ""
    api_listen: str = "127.0.0.1:8025"
    workers: int = 1
    fsync: bool = False
    faults: list[str] = field(default_factory=list)
    fault_seed: int = 0
    local_domains: list[str] = field(default_factory=list)
    mail_root: str = "/var/vmail"
    lmtp: str = ""
    smarthost_host: str = ""
    smarthost_port: int = 587
    smarthost_starttls: bool = True
    smarthost_username: str = ""
    smarthost_password_file: str = ""
    smarthost_ca_file: str = ""


# -- sections of DNS, DKIM and client config (issue 6) go here ------------------------


@dataclass(frozen=True)
class DnsSection:
    """[dns]: the records ``dns records`` computes and how ``dns check`` asks for them."""

    ttl: int = 3600
    #: Addresses of [site] hostname; each family is published and checked separately.
    ipv4: list[str] = field(default_factory=list)
    ipv6: list[str] = field(default_factory=list)
    mx_priority: int = 10
    spf: str = "v=spf1 mx -all"
    dmarc_policy: str = "quarantine"
    dmarc_rua: str = ""
    dmarc_ruf: str = ""
    mta_sts_mode: str = "enforce"
    mta_sts_max_age: int = 604800
    #: Extra MX patterns for the MTA-STS policy (``*.example.net``); [site] hostname is always in.
    mta_sts_mx: list[str] = field(default_factory=list)
    tls_rpt_rua: str = ""
    #: The web host that serves mta-sts, autoconfig and autodiscover (default: [site] hostname).
    web_host: str = ""
    #: Where ``deploy`` writes the autoconfig/autodiscover/MTA-STS files and the nginx snippet.
    web_dir: str = "/var/lib/mailprov/www"
    #: The next TLS key in a rollover (certificate or public key PEM): its TLSA is published too.
    tlsa_next_file: str = ""
    #: ``dns check`` without --nameserver asks this server (IP[:PORT]); empty = /etc/resolv.conf.
    check_nameserver: str = ""
    check_timeout: float = 2.0
    check_retries: int = 2
    check_retry_delay: float = 1.0


@dataclass(frozen=True)
class DkimSection:
    """[dkim]: DKIM keys (files under key_dir) and the OpenDKIM signer's config."""

    key_dir: str = "/var/lib/mailprov/dkim"
    #: One active key per algorithm signs; two algorithms mean dual signing (RFC 8463).
    algorithms: list[str] = field(default_factory=lambda: ["rsa-2048"])
    #: New selectors are named PREFIX + YYYYMMDD + r (RSA) or e (Ed25519).
    selector_prefix: str = "mp"
    #: Days a replaced key stays published before ``dkim retire`` accepts it.
    retire_after_days: int = 7
    #: The user OpenDKIM runs as: owns the private keys (0600).
    signer_user: str = "opendkim"
    #: Where OpenDKIM's opendkim.conf, KeyTable, SigningTable and TrustedHosts are written.
    opendkim_dir: str = "/etc/opendkim"
    milter_host: str = "127.0.0.1"
    #: Debian's OpenDKIM 2.11 signs with one algorithm per process, so each algorithm
    #: gets its own instance (and milter): RSA here, Ed25519 on ed25519_milter_port.
    milter_port: int = 8891
    pid_file: str = "/run/opendkim/opendkim.pid"
    ed25519_milter_port: int = 8892
    ed25519_pid_file: str = "/run/opendkim/opendkim-ed25519.pid"
    #: Hosts whose mail is signed besides loopback (submission clients are signed by AUTH).
    trusted_hosts: list[str] = field(default_factory=list)
    #: ``deploy`` wires the OpenDKIM milter(s) into Postfix and renders OpenDKIM's files
    #: and systemd units. Off until keys exist and the signer runs: Postfix would defer
    #: mail (milter_default_action = tempfail) while no signer answers.
    sign: bool = False


@dataclass(frozen=True)
class CheckSection:
    """[check]: where ``check delivery`` and ``doctor`` connect, and what they trust."""

    #: The address the checks connect to; empty: the first [deploy] listen address
    #: (127.0.0.1 when that is "all").
    host: str = ""
    #: The name the certificate is verified against (empty: [site] hostname).
    server_name: str = ""
    #: The CA file that verifies the servers' certificate (empty: [tls] cert_file itself).
    ca_file: str = ""
    #: How long ``check delivery`` waits for the message to appear over IMAP.
    timeout_seconds: float = 30.0


@dataclass(frozen=True)
class SiteConfig:
    """The whole, frozen site configuration. Services receive this, never the environment."""

    site: SiteSection = field(default_factory=SiteSection)
    store: StoreSection = field(default_factory=StoreSection)
    passwords: PasswordsSection = field(default_factory=PasswordsSection)
    accounts: AccountsSection = field(default_factory=AccountsSection)
    tls: TlsSection = field(default_factory=TlsSection)
    ports: PortsSection = field(default_factory=PortsSection)

    # -- deploy (issue 3) sections
    deploy: DeploySection = field(default_factory=DeploySection)
    postfix: PostfixSection = field(default_factory=PostfixSection)
    dovecot: DovecotSection = field(default_factory=DovecotSection)

    # -- identity (issue 4) sections
    identity: IdentitySection = field(default_factory=IdentitySection)
    notify: NotifySection = field(default_factory=NotifySection)

    # -- relay (issue 5) sections
    relay: RelaySection = field(default_factory=RelaySection)

    # -- dns/dkim (issue 6) sections
    dns: DnsSection = field(default_factory=DnsSection)
    dkim: DkimSection = field(default_factory=DkimSection)
    check: CheckSection = field(default_factory=CheckSection)

    config_file: Path | None = None
    base_dir: Path = field(default_factory=Path.cwd)
    origins: Mapping[str, str] = field(default_factory=dict)

    def resolve_path(self, value: str) -> Path:
        """A path setting made absolute against the config file's folder."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.base_dir / path


def _section_types() -> dict[str, type]:
    """The config sections (dataclass-typed fields of SiteConfig), in order."""
    hints = typing.get_type_hints(SiteConfig)
    return {name: tp for name, tp in hints.items() if isinstance(tp, type) and is_dataclass(tp)}


def find_config_file(
    explicit: str | os.PathLike[str] | None, env: Mapping[str, str]
) -> Path | None:
    """The config file to use, following the documented lookup order."""
    for given, origin in ((explicit, "--config"), (env.get(CONFIG_ENV), CONFIG_ENV)):
        if given:
            path = Path(given).expanduser()
            if not path.is_file():
                raise ConfigInvalid(
                    f"config file {path} (from {origin}) does not exist",
                    hint="create it with 'mailprov init --dir DIR', or fix the path",
                )
            return path.resolve()
    for candidate in (Path.cwd() / CONFIG_NAME, SYSTEM_CONFIG):
        if candidate.is_file():
            return candidate.resolve()
    return None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ConfigInvalid(
            f"cannot read config file {path}: {exc.strerror}",
            hint="check the path and its permissions",
        ) from None
    except UnicodeDecodeError:
        raise ConfigInvalid(f"config file {path} is not UTF-8 text") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigInvalid(
            f"config file {path} is not valid TOML: {exc}",
            hint="fix the line named; see configs/example.toml for the format",
        ) from None


def _coerce(value: Any, tp: Any, where: str) -> Any:  # noqa: PLR0911, PLR0912  (a branch per type)
    """Check (and for environment strings, convert) a value against a field type."""
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        options = [t for t in typing.get_args(tp) if t is not type(None)]
        return _coerce(value, options[0], where)
    from_env = isinstance(value, str) and tp is not str
    if tp is bool:
        if isinstance(value, bool):
            return value
        if from_env and value.lower() in {"1", "true", "yes", "on", "0", "false", "no", "off"}:
            return value.lower() in {"1", "true", "yes", "on"}
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if from_env and value.strip().lstrip("-").isdigit():
            return int(value)
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if from_env:
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
    elif origin is list:
        (item_type,) = typing.get_args(tp)
        if from_env:
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, list):
            return [_coerce(v, item_type, where) for v in value]
    type_name = getattr(tp, "__name__", str(tp))
    raise ConfigInvalid(
        f"{where} must be {type_name}, not {type(value).__name__} {value!r:.64}",
    )


def load_settings(
    *,
    config_file: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> SiteConfig:
    """Build the frozen SiteConfig from defaults, file, environment and flags.

    Args:
        config_file: ``--config``, if given.
        env: the environment (``os.environ`` when None).
        flags: ``{"section.key": value}`` from command-line flags; None values are ignored.

    Raises:
        ConfigInvalid: naming the file, the setting and what is wrong with it.
    """
    env = os.environ if env is None else env
    path = find_config_file(config_file, env)
    data = _read_toml(path) if path else {}
    base_dir = path.parent if path else Path.cwd()
    sections = _section_types()
    where_file = str(path) if path else ""

    unknown_sections = sorted(set(data) - set(sections))
    if unknown_sections:
        raise ConfigInvalid(
            f"{where_file}: unknown section [{unknown_sections[0]}]",
            hint="known sections: " + ", ".join(sections),
        )
    origins: dict[str, str] = {}
    built: dict[str, Any] = {}
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    for name, section_type in sections.items():
        hints = typing.get_type_hints(section_type)
        values: dict[str, Any] = {}
        raw = data.get(name, {})
        if not isinstance(raw, dict):
            raise ConfigInvalid(f"{where_file}: [{name}] must be a table")
        known = [f.name for f in fields(section_type)]
        for key in sorted(set(raw) - set(known)):
            raise ConfigInvalid(
                f"{where_file}: unknown setting '{name}.{key}'",
                hint=f"known settings in [{name}]: " + ", ".join(sorted(known)),
            )
        for key in known:
            dotted = f"{name}.{key}"
            origins[dotted] = "default"
            env_name = f"MAILPROV_{name}_{key}".upper()
            for layer_value, origin in (
                (raw.get(key), f"file {where_file}"),
                (env.get(env_name), f"env {env_name}"),
                (flags.get(dotted), "flag"),
            ):
                if layer_value is not None:
                    values[key] = _coerce(layer_value, hints[key], f"{dotted} ({origin})")
                    origins[dotted] = origin
        built[name] = section_type(**values)
    config = _resolve_store_url(
        SiteConfig(**built, config_file=path, base_dir=base_dir, origins=origins)
    )
    _validate(config)
    return config


def _validate(config: SiteConfig) -> None:
    """Check values whose type alone does not make them valid; name the setting."""
    from mailprov.rules import hashing, passwords, sizes  # noqa: PLC0415

    checks = (
        ("passwords.scheme", lambda: hashing.check_scheme(config.passwords.scheme)),
        (
            "passwords.policy",
            lambda: passwords.get_policy(
                config.passwords.policy, min_length=config.passwords.min_length or None
            ),
        ),
        ("accounts.default_quota", lambda: sizes.parse_size(config.accounts.default_quota)),
    )
    for dotted, check in checks:
        try:
            check()
        except MailprovError as exc:
            raise ConfigInvalid(
                f"{dotted} ({config.origins.get(dotted, 'default')}): {exc.message}",
                hint=exc.hint,
            ) from None
    for name in ("smtp", "submission", "submissions", "imap", "imaps", "pop3", "pop3s", "lmtp"):
        port = getattr(config.ports, name)
        if not 0 < port < 65536:
            raise ConfigInvalid(
                f"ports.{name} ({config.origins.get('ports.' + name)}) must be 1-65535, not {port}"
            )
    if config.passwords.temp_password_hours <= 0:
        raise ConfigInvalid("passwords.temp_password_hours must be a positive number of hours")
    _validate_dkim(config)
    _validate_identity(config)


def _validate_dkim(config: SiteConfig) -> None:
    """[dkim] algorithms: known names, at least one, each once."""
    from mailprov.rules.dkim import ALGORITHMS  # noqa: PLC0415

    algorithms = config.dkim.algorithms
    origin = config.origins.get("dkim.algorithms", "default")
    unknown = [a for a in algorithms if a not in ALGORITHMS]
    if unknown or not algorithms or len(set(algorithms)) != len(algorithms):
        raise ConfigInvalid(
            f"dkim.algorithms ({origin}) must list each of {', '.join(ALGORITHMS)} at most once,"
            f" and at least one; not {algorithms!r:.80}",
            hint='e.g. algorithms = ["rsa-2048", "ed25519"]',
        )


def _validate_identity(config: SiteConfig) -> None:
    """[identity]/[notify] limits the design fixes (a code lives at most 10 minutes)."""
    ident = config.identity
    limits = (
        ("identity.code_ttl_seconds", ident.code_ttl_seconds, 30, 600),
        ("identity.code_attempts", ident.code_attempts, 1, 5),
        ("identity.challenge_ttl_seconds", ident.challenge_ttl_seconds, 30, 300),
        ("identity.request_ttl_hours", ident.request_ttl_hours, 1, 24 * 30),
        ("identity.resend_seconds", ident.resend_seconds, 0, 3600),
        ("identity.codes_per_hour", ident.codes_per_hour, 1, 100),
        ("identity.max_verification_age_days", ident.max_verification_age_days, 1, 36500),
        ("identity.max_chain_depth", ident.max_chain_depth, 1, 16),
        ("notify.port", config.notify.port, 1, 65535),
    )
    for dotted, value, low, high in limits:
        if not low <= value <= high:
            origin = config.origins.get(dotted, "default")
            raise ConfigInvalid(f"{dotted} ({origin}) must be {low}-{high}, not {value}")


def _resolve_store_url(config: SiteConfig) -> SiteConfig:
    """Make a relative ``sqlite:///file`` URL absolute against the config's folder."""
    url = config.store.url
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/"):
        rest = url[len(prefix) :]
        path, sep, query = rest.partition("?")
        if path and path != ":memory:":
            from_file = config.origins.get("store.url", "").startswith("file")
            base = config.base_dir if from_file else Path.cwd()
            url = prefix + str((base / path).resolve()) + sep + query
            return replace(config, store=replace(config.store, url=url))
    return config


def as_dict(config: SiteConfig) -> dict[str, dict[str, Any]]:
    """The settings as plain nested dicts, section by section."""
    out: dict[str, dict[str, Any]] = {}
    for name in _section_types():
        section = getattr(config, name)
        out[name] = {f.name: getattr(section, f.name) for f in fields(section)}
    return out
