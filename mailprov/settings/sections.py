"""The site config's sections: one frozen dataclass per ``[section]``, and SiteConfig.

A field's type says what its value is (see :mod:`mailprov.settings.kinds`); the
loader checks every value against it, so a new setting is one typed field here (in
your area's region) and one line in ``configs/example.toml``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from mailprov.settings.checks import Range
from mailprov.settings.kinds import (
    Backend,
    ClaimName,
    Command,
    DbHost,
    DkimAlgorithm,
    DmarcPolicy,
    DovecotBaseDir,
    DovecotSize,
    Endpoint,
    HashScheme,
    Host,
    Hostname,
    HostRole,
    IpAddress,
    Ipv4Address,
    Ipv6Address,
    ListenAddress,
    LocalPath,
    MailAddress,
    MailtoList,
    MtaStsMode,
    MxPattern,
    Nameserver,
    Network,
    NonNegative,
    NonNegativeSeconds,
    Oid,
    OptionalBackendName,
    OptionalEndpoint,
    OptionalHost,
    OptionalHostname,
    OptionalIpAddress,
    OptionalLocalPath,
    OptionalNameserver,
    OptionalPublicUrl,
    OptionalServerPath,
    OptionalWebUrl,
    PasswordPolicy,
    PlainName,
    Port,
    Positive,
    PositiveSeconds,
    Relayhost,
    RelayMode,
    RelayTls,
    ReportUriList,
    ResetRoute,
    ReturnUrl,
    Score,
    SelectorPrefix,
    ServerPath,
    Size,
    SmtpUser,
    SpfText,
    StoreUrl,
    TemporaryLogin,
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

    @property
    def mail_domain(self) -> str:
        """The mail domain: ``domain``, else ``hostname`` without its first label."""
        return self.domain or self.hostname.partition(".")[2]


@dataclass(frozen=True)
class StoreSection:
    """[store]: where the account store lives."""

    url: StoreUrl = ""
    #: PostgreSQL servers (``HOST[:PORT]``, e.g. a streaming replica on this host) that the
    #: rendered Postfix maps and Dovecot read accounts from, with fall-over between them;
    #: same database, user and password as ``url``. Empty: they read from ``url``.
    #: mailprov itself always writes to ``url`` (the primary).
    read_hosts: list[DbHost] = field(default_factory=list)


@dataclass(frozen=True)
class ClusterSection:
    """[cluster]: a site on several mail hosts sharing one PostgreSQL store.

    Every host reads the same ``backends`` list; each says which part it plays.
    """

    #: all: this host receives, stores and serves all mail (one host, the default);
    #: backend: it stores the mail of the mailboxes whose home it is (Dovecot with LMTP);
    #: frontend: MX, submission and an IMAP/POP3 proxy that pass each mailbox's mail and
    #: sessions to its home backend; no mail is stored here.
    role: HostRole = "all"
    #: This host's name in ``backends`` (role backend).
    name: OptionalBackendName = ""
    #: Every backend of the site as NAME=HOST, where frontends reach its IMAP, POP3 and
    #: LMTP on the [ports] of this file (a trusted network: see README "Beyond one machine").
    backends: list[Backend] = field(default_factory=list)
    #: The home of a new mailbox when neither ``mailbox add --backend`` nor its domain
    #: names one; empty: the first of ``backends``.
    default_backend: OptionalBackendName = ""
    #: The networks the site's frontends connect from (role backend): their IMAP/POP3
    #: proxy logs in here without the password being checked again (the frontend checked
    #: it), and their Postfix delivers over LMTP. Nothing else may reach those ports
    #: (README "Beyond one machine": a private network or a firewall).
    frontends: list[Network] = field(default_factory=list)
    #: The address a frontend connects to the backends from (its IMAP/POP3 proxy and its
    #: LMTP deliveries); empty: the system's choice. For a host with several addresses,
    #: so that the backends see one that is in their ``frontends``.
    source_address: OptionalIpAddress = ""
    #: ``mailbox move`` copies mail between backends with Dovecot's doveadm protocol: each
    #: backend's doveadm server listens on its host (from ``backends``) at this port.
    doveadm_port: Port = 24245
    #: The doveadm protocol's shared password (0600, the same file on every host); rendered
    #: into Dovecot's config as ``doveadm_password = <FILE``, never on a command line.
    #: Empty: no doveadm server, and ``mailbox move`` is refused.
    doveadm_password_file: OptionalServerPath = ""

    def backend_hosts(self) -> dict[str, str]:
        """Each backend's name → the host frontends reach it at, in the order given."""
        return dict(entry.split("=", 1) for entry in self.backends)

    def default_home(self) -> str:
        """Where a mailbox lives when neither it nor its domain says (empty: one host)."""
        return self.default_backend or next(iter(self.backend_hosts()), "")


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
    #: "portal": IMAP, POP3 and SMTP AUTH refuse a temporary password, naming where to
    #: change it ([web] public_url); "until-expiry": it works in mail clients until it expires.
    temporary_login: TemporaryLogin = "portal"
    #: ``sweep`` reminds the owner this many days before the password reaches the
    #: policy's maximum age (once per password; 0: no reminder).
    reminder_days: Annotated[int, Range(0, 365)] = 14
    #: Password reset without the old password: by a code to a verified recovery contact
    #: ("contact"), or by proving the provisioning identity again plus that code ("identity").
    reset_via: list[ResetRoute] = field(default_factory=lambda: ["contact", "identity"])
    #: Reset starts one client IP may make per hour (per address: the [identity] code limits).
    reset_per_client_hour: Annotated[int, Range(1, 1000)] = 20


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
    #: ManageSieve (RFC 5804): mail clients edit their filters here, STARTTLS before login.
    managesieve: Port = 4190
    #: [cluster] role "backend": Dovecot's quota-status policy service at its address,
    #: which the frontends' Postfix asks at RCPT time (a full mailbox is refused, not bounced).
    quota_status: Port = 12340


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
    #: The largest Sieve script an owner may store (ManageSieve and the filters API).
    sieve_max_script_size: DovecotSize = "64K"
    #: Forwarding addresses (Sieve redirects) one message may go to.
    sieve_max_redirects: Annotated[int, Range(1, 32)] = 4


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


#: JWS algorithms a provider key may use (asymmetric only, as the gate's allow-list).
OidcAlgorithm = Literal[
    "ES256", "ES384", "ES512", "EdDSA", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"
]
#: Every level of rules/assurance.py's frameworks; which fits which framework: consistency.py.
AssuranceLevel = Literal[
    "", "simplified", "standard", "confirmed", "low", "substantial", "high", "ial1", "ial2", "ial3"
]


@dataclass(frozen=True)
class OidcSection:
    """[oidc]: identity by redirect — ``mailprov serve`` as an OpenID Connect relying party.

    The provider's ID token goes through the identity gate's own checks (table (A) of
    docs/identity-gate.md) with the provider's keys (from its discovery document and
    JWKS), ``client_id`` as the audience and this section's trust framework and level.
    """

    #: The provider's issuer, exactly as its discovery document and its tokens write it
    #: (https; plain http only on loopback). Empty: identity by redirect is off.
    issuer: OptionalWebUrl = ""
    #: This service's client id at the provider (the ID token's audience).
    client_id: Text = ""
    #: The client secret (0600 file); empty: a public client (PKCE alone).
    client_secret_file: OptionalLocalPath = ""
    #: The callback URL registered at the provider: this service's
    #: /api/v1/identity/oidc/callback as browsers reach it.
    redirect_url: OptionalWebUrl = ""
    scopes: list[Token] = field(default_factory=lambda: ["openid"])
    #: The trust framework asked for and accepted ("": any the gate knows, each at its
    #: default minimum) and the minimum assurance level in it ("": its default).
    trust_framework: Literal["", "ru_esia", "eidas", "nist_800_63A"] = ""
    min_assurance_level: AssuranceLevel = ""
    #: The ID token's JOSE "typ" header as the provider writes it.
    token_type: Token = "JWT"  # noqa: S105  (a JWT "typ", not a secret)
    #: The algorithm of provider keys whose JWK names none (the JWKS "alg" is optional).
    key_algorithm: OidcAlgorithm = "RS256"
    #: How long a started sign-in may take at the provider.
    state_ttl_seconds: Annotated[int, Range(60, 1800)] = 600
    #: Where the browser goes when the callback is done: a path here or an https URL;
    #: {number} is the request's number; '?identity=verified' or '?error=CODE' is added.
    return_url: ReturnUrl = "/requests/{number}"
    #: CA certificates for the provider's https (empty: the system's).
    ca_file: OptionalLocalPath = ""
    timeout_seconds: PositiveSeconds = 10.0


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
    #: Two-factor: this many wrong codes for one mailbox within two_factor_lock_minutes
    #: lock its second step (sessions waiting for a code end; the owner is told) ...
    two_factor_max_failures: Annotated[int, Range(1, 100)] = 5
    #: ... for this many minutes.
    two_factor_lock_minutes: Annotated[int, Range(1, 1440)] = 15
    #: Where people reach the portal (named in refusals of a temporary password, served by
    #: the nginx snippet); empty: https:// [dns] web_host (default [site] hostname) on
    #: [dns] web_https_port.
    public_url: OptionalPublicUrl = ""
    #: Failed sign-ins of one address within signin_window_seconds that lock it ...
    signin_max_failures: Annotated[int, Range(1, 1000)] = 5
    #: ... and of one client IP (higher: many people may share one address behind NAT).
    signin_max_failures_per_client: Annotated[int, Range(1, 100_000)] = 50
    signin_window_seconds: Annotated[int, Range(1, 86_400)] = 900
    #: How long a locked address or client is refused, even with the right password.
    signin_lockout_seconds: Annotated[int, Range(1, 86_400)] = 900
    #: Requests for a mailbox one client IP may open over the API/portal in an hour (429
    #: rate-limited beyond; the administrator's CLI is not limited); also the domain
    #: ownership proofs it may start there (each may add an inactive domain).
    requests_per_client_hour: Annotated[int, Range(1, 100_000)] = 10
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
class RspamdSection:
    """[rspamd]: inbound filtering (SPF, DKIM, DMARC, ARC, scores) by rspamd as a Postfix milter."""

    #: ``deploy`` renders rspamd's files and unit and wires its milter into Postfix.
    #: Off by default: Postfix would defer inbound mail while no rspamd answers.
    enabled: bool = False
    #: Where rspamd.conf and the local.d/ and override.d/ folders are written.
    config_dir: ServerPath = "/etc/mailprov/rspamd"
    #: rspamd's workers listen on this address (Postfix connects to the milter port).
    host: IpAddress = "127.0.0.1"
    milter_port: Port = 11332
    normal_port: Port = 11333
    controller_port: Port = 11334
    #: The Redis rspamd keeps its state in (greylisting, Bayes, rate limits): HOST:PORT.
    redis: Endpoint = "127.0.0.1:6379"
    #: rspamd's own resolvers (IP[:PORT]); empty: /etc/resolv.conf.
    nameservers: list[Nameserver] = field(default_factory=list)
    #: rspamd's state (hyperscan cache, stats) and PID folder.
    db_dir: ServerPath = "/var/lib/mailprov/rspamd"
    run_dir: ServerPath = "/run/mailprov-rspamd"
    #: Empty: rspamd logs to syslog, facility mail (the journal under systemd).
    log_file: OptionalServerPath = ""
    #: The user rspamd's workers run as (Debian's package makes _rspamd).
    user: UserName = "_rspamd"
    #: Also check SPF, DKIM and DMARC of mail from mynetworks and loopback (normally our own
    #: hosts, skipped): for sites where a relay on this host hands on mail from outside.
    check_local: bool = False
    #: DNS block lists (Spamhaus and others): off, since they need the network and some
    #: forbid use through public resolvers.
    rbl: bool = False
    #: Greylisting: a first message scoring above greylist_score is deferred (4xx) once.
    greylist: bool = False
    greylist_score: Score = 4.0
    #: Spam at or above this score gets the X-Spam header; at reject_score it is refused.
    add_header_score: Score = 6.0
    reject_score: Score = 15.0
    #: The owner's spam settings, site defaults (a domain's, then a mailbox's own value
    #: wins; README, "Spam settings"): mail scoring at least spam_threshold is junk, and
    #: with spam_to_junk a Sieve rule files it into the Junk folder at delivery.
    spam_threshold: Score = 6.0
    spam_to_junk: bool = True
    #: ARC-seal (RFC 8617) mail arriving from outside, so that the receivers of what this
    #: site forwards can trust its checks: signed with each domain's active RSA DKIM key
    #: (keys from [dkim] key_dir; 'rsa-2048' must be in [dkim] algorithms).
    arc_seal: bool = False


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
    cluster: ClusterSection = field(default_factory=ClusterSection)
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
    oidc: OidcSection = field(default_factory=OidcSection)
    notify: NotifySection = field(default_factory=NotifySection)

    # -- relay (issue 5) sections
    relay: RelaySection = field(default_factory=RelaySection)

    # -- the owner's side (issue 11) sections
    web: WebSection = field(default_factory=WebSection)

    # -- dns/dkim (issue 6) sections
    dns: DnsSection = field(default_factory=DnsSection)
    dkim: DkimSection = field(default_factory=DkimSection)
    check: CheckSection = field(default_factory=CheckSection)
    rspamd: RspamdSection = field(default_factory=RspamdSection)

    config_file: Path | None = None
    base_dir: Path = field(default_factory=Path.cwd)
    origins: Mapping[str, str] = field(default_factory=dict)

    def portal_url(self) -> str:
        """Where people reach the owner's portal: [web] public_url, or else the web host
        ([dns] web_host, default [site] hostname) on [dns] web_https_port."""
        if self.web.public_url:
            return self.web.public_url
        port = self.dns.web_https_port
        return (
            f"https://{self.dns.web_host or self.site.hostname}{'' if port == 443 else f':{port}'}/"
        )

    def resolve_path(self, value: str) -> Path:
        """A path setting made absolute against the config file's folder."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.base_dir / path
