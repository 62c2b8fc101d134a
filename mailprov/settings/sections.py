"""The site config's sections: one frozen dataclass per ``[section]``, and SiteConfig.

A field's type says what its value is (see :mod:`mailprov.settings.kinds`); the
loader checks every value against it, so a new setting is one typed field here (in
your area's region) and one line in ``configs/example.toml``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from mailprov.settings.checks import Range
from mailprov.settings.kinds import (
    ClaimName,
    Command,
    DkimAlgorithm,
    DmarcPolicy,
    DovecotBaseDir,
    DovecotSize,
    Endpoint,
    HashScheme,
    Host,
    Hostname,
    IpAddress,
    Ipv4Address,
    Ipv6Address,
    ListenAddress,
    LocalPath,
    MailAddress,
    MailtoList,
    MtaStsMode,
    MxPattern,
    Network,
    NonNegative,
    NonNegativeSeconds,
    Oid,
    OptionalEndpoint,
    OptionalHost,
    OptionalHostname,
    OptionalLocalPath,
    OptionalNameserver,
    OptionalServerPath,
    PasswordPolicy,
    PlainName,
    Port,
    Positive,
    PositiveSeconds,
    Relayhost,
    RelayMode,
    RelayTls,
    ReportUriList,
    SelectorPrefix,
    ServerPath,
    Size,
    SmtpUser,
    SpfText,
    StoreUrl,
    Text,
    Token,
    TrustedHost,
    UserName,
)


@dataclass(frozen=True)
class SiteSection:
    """[site]: who this mail host is."""

    hostname: Hostname = "mail.example.test"
    #: The mail domain; empty: [site] hostname without its first label.
    domain: OptionalHostname = ""


@dataclass(frozen=True)
class StoreSection:
    """[store]: where the account store lives."""

    url: StoreUrl = ""


@dataclass(frozen=True)
class PasswordsSection:
    """[passwords]: policy, hash scheme and temporary-password lifetime."""

    policy: PasswordPolicy = "source"
    scheme: HashScheme = "ARGON2ID"
    #: 0: the policy's own minimum; otherwise 8 up to the policy's maximum.
    min_length: NonNegative = 0
    max_age_days: NonNegative = 0
    enforce_max_age: bool = False
    temp_password_hours: Positive = 72
    generated_length: Annotated[int, Range(8, 128)] = 16


@dataclass(frozen=True)
class TlsSection:
    """[tls]: the certificate the mail servers present (e.g. Let's Encrypt's paths)."""

    cert_file: ServerPath = "/etc/ssl/certs/ssl-cert-snakeoil.pem"
    key_file: ServerPath = "/etc/ssl/private/ssl-cert-snakeoil.key"


@dataclass(frozen=True)
class PortsSection:
    """[ports]: where the mail services listen (and what clients are told to use)."""

    smtp: Port = 25
    submission: Port = 587
    submissions: Port = 465
    imap: Port = 143
    imaps: Port = 993
    pop3: Port = 110
    pop3s: Port = 995
    lmtp: Port = 24


@dataclass(frozen=True)
class AccountsSection:
    """[accounts]: defaults for new mailboxes."""

    default_quota: Size = "0"


# -- sections of config rendering and deploy (issue 3) go here --------------------


@dataclass(frozen=True)
class DeploySection:
    """[deploy]: where rendered files are installed, and the host-wide choices they share."""

    postfix_dir: ServerPath = "/etc/postfix"
    dovecot_dir: ServerPath = "/etc/dovecot"
    systemd_dir: ServerPath = "/etc/systemd/system"
    # The generations of installed files, the 'current' link and their manifests.
    state_dir: ServerPath = "/var/lib/mailprov/deploy"
    # Generations kept for 'deploy rollback' (the active one included; at least 2).
    keep_generations: Annotated[int, Range(2, 100)] = 5
    # Addresses the mail services listen on; "all" means every interface.
    listen: list[ListenAddress] = field(default_factory=lambda: ["all"])
    # The mailprov command the systemd units run (and the config file they pass).
    mailprov_command: ServerPath = "/usr/local/bin/mailprov"


@dataclass(frozen=True)
class PostfixSection:
    """[postfix]: Postfix's own folders and relaying choices."""

    queue_directory: ServerPath = "/var/spool/postfix"
    data_directory: ServerPath = "/var/lib/postfix"
    # Empty: log to syslog. A path: log through postlogd into that file.
    maillog_file: OptionalServerPath = ""
    # Clients in these networks may relay without AUTH (keep it to this host).
    mynetworks: list[Network] = field(default_factory=lambda: ["127.0.0.0/8", "[::1]/128"])
    # Empty: deliver outbound mail by MX lookup. "[host]:port": send it all there.
    relayhost: Relayhost = ""
    message_size_limit: Annotated[int, Range(1024)] = 52_428_800
    # Off only for offline test rigs: DNS-based checks and MX lookups need a resolver.
    dns: bool = True
    # Local domains whose addresses clients that did not log in (and are outside
    # mynetworks) may still use as envelope sender on port 25, e.g. for an outside
    # newsletter service. Every other local domain's sender needs AUTH.
    unauthenticated_sender_domains: list[Hostname] = field(default_factory=list)


@dataclass(frozen=True)
class DovecotSection:
    """[dovecot]: Dovecot's folders, the vmail owner, and auth tuning."""

    base_dir: DovecotBaseDir = "/run/dovecot"
    state_dir: ServerPath = "/var/lib/dovecot"
    # Empty: log to syslog.
    log_path: OptionalServerPath = ""
    instance_name: PlainName = "dovecot"
    # Maildirs live in MAIL_ROOT/<domain>/<local part>/Maildir, owned by the vmail user.
    mail_root: ServerPath = "/var/vmail"
    vmail_user: UserName = "vmail"
    #: Never root (0).
    vmail_uid: Annotated[int, Range(1, 2**31 - 1)] = 5000
    vmail_gid: Annotated[int, Range(1, 2**31 - 1)] = 5000
    # ARGON2ID needs memory in the auth worker (64 MiB per hash at our parameters).
    auth_worker_vsz_limit: DovecotSize = "1G"
    # Off only in test profiles: the per-IP delay after failed logins slows tests down.
    auth_penalty: bool = True


# -- sections of the identity gate (issue 4) go here -------------------------------


@dataclass(frozen=True)
class IdentitySection:
    """[identity]: the identity gate's policy (see ../shared/IDENTITY.md)."""

    # The code pepper: >= 32 random bytes in a file outside the store, created
    # 0600 on first use. Rotating it invalidates the live codes, nothing else.
    pepper_file: LocalPath = "identity-pepper"
    token_type: Token = "mailprov-idv+jwt"  # noqa: S105  (a JWT "typ", not a secret)
    # The design fixes these limits (a code lives at most 10 minutes, 5 attempts).
    request_ttl_hours: Annotated[int, Range(1, 24 * 30)] = 24
    code_ttl_seconds: Annotated[int, Range(30, 600)] = 600
    code_attempts: Annotated[int, Range(1, 5)] = 5
    resend_seconds: Annotated[int, Range(0, 3600)] = 60
    codes_per_hour: Annotated[int, Range(1, 100)] = 5
    challenge_ttl_seconds: Annotated[int, Range(30, 300)] = 300
    max_verification_age_days: Annotated[int, Range(1, 36500)] = 1095
    required_claims: list[ClaimName] = field(
        default_factory=lambda: ["family_name", "given_name", "birthdate"]
    )
    match_yo_as_ye: bool = True
    extra_ekus: list[Oid] = field(default_factory=list)
    max_chain_depth: Annotated[int, Range(1, 16)] = 4


@dataclass(frozen=True)
class NotifySection:
    """[notify]: how codes and notices reach the recovery contact."""

    # SMTP through a smarthost (aiosmtplib) ...
    smarthost: OptionalHost = ""
    port: Port = 25
    starttls: bool = False
    username: SmtpUser = ""
    password_file: OptionalLocalPath = ""
    sender: MailAddress = "mailprov@localhost"
    # ... or a hook command (an SMS gateway script) that reads the destination and
    # the message on stdin, never argv. Split like a shell would; no shell is run.
    hook: Command = ""
    timeout_seconds: PositiveSeconds = 15.0


# -- sections of the relay (issue 5) go here -----------------------------------------


@dataclass(frozen=True)
class RelaySection:
    """[relay]: the local SMTP relay for test rigs (``mailprov relay serve``).

    ``mode`` is ``capture`` (store everything, one mailbox per recipient and AUTH
    user), ``deliver`` (provisioned mailboxes only, into their Maildir or over
    LMTP) or ``forward`` (to the smarthost, replying with its answers). Secrets
    never live here: the smarthost password is read from ``smarthost_password_file``.
    """

    #: HOST:PORT; port 0 = any free port.
    listen: Endpoint = "127.0.0.1:2525"
    #: EHLO/banner name; empty: [site] hostname.
    hostname: OptionalHostname = ""
    mode: RelayMode = "capture"
    storage_dir: LocalPath = "relay"
    max_messages: NonNegative = 50_000
    max_age_hours: NonNegative = 168
    max_bytes: Size = "1G"
    size_limit: Size = "25M"
    max_recipients: Positive = 100
    require_auth: bool = False
    allow_auth_without_tls: bool = False
    #: STARTTLS before MAIL on the plain listener (530 5.7.0 otherwise); needs tls on.
    require_tls: bool = False
    credentials_file: OptionalLocalPath = ""
    tls: RelayTls = "generate"
    tls_cert_file: OptionalLocalPath = ""
    tls_key_file: OptionalLocalPath = ""
    tls_listen: OptionalEndpoint = ""
    #: "" turns the API off. Beyond loopback it needs api_token_file.
    api_listen: OptionalEndpoint = "127.0.0.1:8025"
    #: Host header names the API answers besides its listen address, localhost,
    #: 127.0.0.1 and [::1] (each with or without the port); anything else gets 421.
    api_hosts: list[Host] = field(default_factory=list)
    #: A 0600 file holding the API's bearer token; empty: no token (loopback only).
    api_token_file: OptionalLocalPath = ""
    #: AUTH failures of one client IP, or of one user, within auth_lockout_seconds that
    #: lock it out (per process: with workers = N each worker counts on its own).
    auth_max_failures: Positive = 10
    #: How long a locked-out IP or user is refused (454), even with the right password.
    auth_lockout_seconds: PositiveSeconds = 300.0
    #: AUTH failures on one connection before the relay closes it (421).
    auth_failures_per_connection: Positive = 3
    workers: Annotated[int, Range(1, 64)] = 1
    fsync: bool = False
    #: Fault rules; their syntax is the relay's (checked when it starts).
    faults: list[Text] = field(default_factory=list)
    fault_seed: int = 0
    local_domains: list[Hostname] = field(default_factory=list)
    mail_root: LocalPath = "/var/vmail"
    #: deliver mode: HOST:PORT or socket path of Dovecot's LMTP; empty: write Maildirs.
    lmtp: Text = ""
    smarthost_host: OptionalHost = ""
    smarthost_port: Port = 587
    smarthost_starttls: bool = True
    smarthost_username: SmtpUser = ""
    smarthost_password_file: OptionalLocalPath = ""
    smarthost_ca_file: OptionalLocalPath = ""


# -- sections of the owner's side (issue 11) go here ----------------------------------


@dataclass(frozen=True)
class WebSection:
    """[web]: ``mailprov serve``, the HTTP service of the mailbox owner's side (API, portal)."""

    #: HOST:PORT. Plain HTTP belongs on loopback, behind a reverse proxy that adds TLS.
    listen: Endpoint = "127.0.0.1:8080"
    #: Host header names answered besides the listen address and the loopback names
    #: (the public name, e.g. mail.example.org); anything else gets 421.
    hosts: list[Host] = field(default_factory=list)
    #: Serve HTTPS itself with [tls] cert_file/key_file (off: plain HTTP behind a proxy).
    tls: bool = False
    #: A session ends after this many minutes without a request ...
    session_idle_minutes: Annotated[int, Range(1, 1440)] = 30
    #: ... and at the latest this many hours after sign-in.
    session_max_hours: Annotated[int, Range(1, 168)] = 12
    #: X-Forwarded-For is believed only from these peers (the reverse proxy).
    trusted_proxies: list[IpAddress] = field(default_factory=lambda: ["127.0.0.1", "::1"])
    #: DEMOS AND TEST RIGS ONLY: a folder made by 'mailprov identity test-issuer init'. The
    #: portal then offers a TEST identity provider that signs whatever identity is typed
    #: into it (trusted only if its JWKS was added with 'identity trust add-issuer').
    test_issuer: OptionalLocalPath = ""


# -- sections of DNS, DKIM and client config (issue 6) go here ------------------------


@dataclass(frozen=True)
class DnsSection:
    """[dns]: the records ``dns records`` computes and how ``dns check`` asks for them."""

    ttl: Annotated[int, Range(1, 2**31 - 1)] = 3600
    #: Addresses of [site] hostname; each family is published and checked separately.
    ipv4: list[Ipv4Address] = field(default_factory=list)
    ipv6: list[Ipv6Address] = field(default_factory=list)
    mx_priority: Annotated[int, Range(0, 65535)] = 10
    spf: SpfText = "v=spf1 mx -all"
    dmarc_policy: DmarcPolicy = "quarantine"
    #: Comma-separated mailto: URIs (each may end in !SIZE).
    dmarc_rua: MailtoList = ""
    dmarc_ruf: MailtoList = ""
    mta_sts_mode: MtaStsMode = "enforce"
    #: RFC 8461: at most one year.
    mta_sts_max_age: Annotated[int, Range(0, 31_557_600)] = 604800
    #: Extra MX patterns for the MTA-STS policy (``*.example.net``); [site] hostname is always in.
    mta_sts_mx: list[MxPattern] = field(default_factory=list)
    #: Comma-separated mailto: or https:// URIs; empty: mailto:postmaster@DOMAIN.
    tls_rpt_rua: ReportUriList = ""
    #: The web host that serves mta-sts, autoconfig and autodiscover (default: [site] hostname).
    web_host: OptionalHostname = ""
    #: Where ``deploy`` writes the autoconfig/autodiscover/MTA-STS files and the nginx snippet.
    web_dir: ServerPath = "/var/lib/mailprov/www"
    #: The certificate and key nginx serves the web names with (empty: [tls] cert_file/key_file).
    #: It must cover mta-sts.DOMAIN, autoconfig.DOMAIN and autodiscover.DOMAIN of every domain.
    web_cert_file: OptionalServerPath = ""
    web_key_file: OptionalServerPath = ""
    #: Where the nginx snippet listens (the _autodiscover._tcp SRV record names the HTTPS port).
    web_http_port: Port = 80
    web_https_port: Port = 443
    #: The next TLS key in a rollover (certificate or public key PEM): its TLSA is published too.
    tlsa_next_file: OptionalLocalPath = ""
    #: ``dns check`` without --nameserver asks this server (IP[:PORT]); empty = /etc/resolv.conf.
    check_nameserver: OptionalNameserver = ""
    check_timeout: PositiveSeconds = 2.0
    check_retries: NonNegative = 2
    check_retry_delay: NonNegativeSeconds = 1.0


@dataclass(frozen=True)
class DkimSection:
    """[dkim]: DKIM keys (files under key_dir) and the OpenDKIM signer's config."""

    key_dir: ServerPath = "/var/lib/mailprov/dkim"
    #: One active key per algorithm signs; two algorithms mean dual signing (RFC 8463).
    algorithms: list[DkimAlgorithm] = field(default_factory=lambda: ["rsa-2048"])
    #: New selectors are named PREFIX + YYYYMMDD + r (RSA) or e (Ed25519).
    selector_prefix: SelectorPrefix = "mp"
    #: Days a replaced key stays published before ``dkim retire`` accepts it.
    retire_after_days: NonNegative = 7
    #: The user OpenDKIM runs as: owns the private keys (0600).
    signer_user: UserName = "opendkim"
    #: Where OpenDKIM's opendkim.conf, KeyTable, SigningTable and TrustedHosts are written.
    opendkim_dir: ServerPath = "/etc/opendkim"
    milter_host: IpAddress = "127.0.0.1"
    #: Debian's OpenDKIM 2.11 signs with one algorithm per process, so each algorithm
    #: gets its own instance (and milter): RSA here, Ed25519 on ed25519_milter_port.
    milter_port: Port = 8891
    pid_file: ServerPath = "/run/opendkim/opendkim.pid"
    ed25519_milter_port: Port = 8892
    ed25519_pid_file: ServerPath = "/run/opendkim/opendkim-ed25519.pid"
    #: Hosts whose mail is signed besides loopback (submission clients are signed by AUTH).
    trusted_hosts: list[TrustedHost] = field(default_factory=list)
    #: ``deploy`` wires the OpenDKIM milter(s) into Postfix and renders OpenDKIM's files
    #: and systemd units. Off until keys exist and the signer runs: Postfix would defer
    #: mail (milter_default_action = tempfail) while no signer answers.
    sign: bool = False


@dataclass(frozen=True)
class CheckSection:
    """[check]: where ``check delivery`` and ``doctor`` connect, and what they trust."""

    #: The address the checks connect to; empty: the first [deploy] listen address
    #: (127.0.0.1 when that is "all").
    host: OptionalHost = ""
    #: The name the certificate is verified against (empty: [site] hostname).
    server_name: OptionalHostname = ""
    #: The CA file that verifies the servers' certificate (empty: [tls] cert_file itself).
    ca_file: OptionalLocalPath = ""
    #: How long ``check delivery`` waits for the message to appear over IMAP.
    timeout_seconds: PositiveSeconds = 30.0


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

    # -- the owner's side (issue 11) sections
    web: WebSection = field(default_factory=WebSection)

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
