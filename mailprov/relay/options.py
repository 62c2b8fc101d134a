"""The relay's run-time options, built from the checked ``[relay]`` section.

Every ``[relay]`` value is checked where the settings load (:mod:`mailprov.settings`);
:func:`options_from_settings` lays the ``relay serve`` flags over the section
(checked the same way, by :func:`mailprov.settings.override`), resolves paths and
sizes into a frozen :class:`RelayOptions`, and refuses an open relay (a
non-loopback address without ``require_auth``). The defaults live in one place,
:class:`~mailprov.settings.RelaySection`; RelayOptions' own defaults are derived from it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailprov.errors import ConfigInvalid, OpenRelayRefused
from mailprov.rules.sizes import parse_size
from mailprov.settings import RelaySection, SiteConfig, SiteSection, override
from mailprov.settings.checks import Invalid, parse_endpoint
from mailprov.settings.kinds import RelayMode, RelayTls

_DEFAULT = RelaySection()


def parse_listen(value: str, setting: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` → (host, port). Port 0 means any free port.

    Raises:
        ConfigInvalid: naming ``setting``.
    """
    try:
        return parse_endpoint(value)
    except Invalid as exc:
        raise ConfigInvalid(f"{setting} = {value!r:.80}: {exc.why}", hint=exc.hint) from None


_LISTEN = parse_listen(_DEFAULT.listen, "relay.listen")
_API = parse_listen(_DEFAULT.api_listen, "relay.api_listen")


@dataclass(frozen=True)
class Smarthost:
    """Where forward mode relays to."""

    host: str
    port: int = _DEFAULT.smarthost_port
    starttls: bool = _DEFAULT.smarthost_starttls
    username: str = _DEFAULT.smarthost_username
    password_file: Path | None = None
    ca_file: Path | None = None


@dataclass(frozen=True)
class RelayOptions:
    """Everything the relay needs to run (no secrets: files are named, not read)."""

    host: str = _LISTEN[0]
    port: int = _LISTEN[1]
    hostname: str = SiteSection().hostname
    mode: RelayMode = _DEFAULT.mode
    storage_dir: Path = Path(_DEFAULT.storage_dir)
    max_messages: int = _DEFAULT.max_messages
    max_age_s: float = _DEFAULT.max_age_hours * 3600.0
    max_bytes: int = parse_size(_DEFAULT.max_bytes)
    size_limit: int = parse_size(_DEFAULT.size_limit)
    max_recipients: int = _DEFAULT.max_recipients
    require_auth: bool = _DEFAULT.require_auth
    allow_auth_without_tls: bool = _DEFAULT.allow_auth_without_tls
    require_tls: bool = _DEFAULT.require_tls
    credentials_file: Path | None = None
    store_url: str = ""
    tls: RelayTls = _DEFAULT.tls
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_listen: tuple[str, int] | None = None
    api: tuple[str, int] | None = _API
    api_hosts: tuple[str, ...] = tuple(_DEFAULT.api_hosts)
    api_token_file: Path | None = None
    auth_max_failures: int = _DEFAULT.auth_max_failures
    auth_lockout_s: float = _DEFAULT.auth_lockout_seconds
    auth_failures_per_connection: int = _DEFAULT.auth_failures_per_connection
    workers: int = _DEFAULT.workers
    fsync: bool = _DEFAULT.fsync
    faults: tuple[str, ...] = tuple(_DEFAULT.faults)
    fault_seed: int = _DEFAULT.fault_seed
    local_domains: tuple[str, ...] = tuple(_DEFAULT.local_domains)
    mail_root: Path = Path(_DEFAULT.mail_root)
    lmtp: str = _DEFAULT.lmtp
    smarthost: Smarthost | None = None
    json_log: bool = False
    log_level: str = "info"
    extra: dict[str, str] = field(default_factory=dict)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and 'localhost'."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def refuse_open_api(api: tuple[str, int] | None, token_file: Path | None) -> None:
    """Refuse an API that listens beyond loopback without a bearer token.

    Raises:
        OpenRelayRefused: naming relay.api_token_file.
    """
    if api is not None and not is_loopback(api[0]) and token_file is None:
        raise OpenRelayRefused(
            f"relay.api_listen {api[0]}:{api[1]} is beyond loopback and "
            "relay.api_token_file is not set: anyone who reaches it could read the mail",
            hint="set relay.api_token_file (a 0600 file holding a long random token), "
            "or keep the API on 127.0.0.1",
        )


#: ``relay serve`` flags whose name is not ``--KEY`` with dashes.
_FLAG_NAMES = {"storage_dir": "--storage", "faults": "--fault"}
#: ``relay serve`` flags that are not [relay] settings.
_RUNTIME = ("json_log", "log_level")


def options_from_settings(settings: SiteConfig, **overrides: Any) -> RelayOptions:
    """The [relay] section with ``relay serve``'s flags on top, as RelayOptions.

    Args:
        overrides: [relay] keys (``listen="127.0.0.1:0"``) checked like any flag, plus
            ``json_log`` and ``log_level``; None values are ignored.

    Raises:
        ConfigInvalid: a flag's value is not usable; the message names it.
        OpenRelayRefused: a non-loopback listener without require_auth, or a
            non-loopback API without a token.
    """
    flags = {f"relay.{k}": v for k, v in overrides.items() if k not in _RUNTIME}
    names = {f"relay.{k}": _FLAG_NAMES.get(k, "--" + k.replace("_", "-")) for k in overrides}
    settings = override(settings, flags, flag_names=names)
    r = settings.relay
    host, port = parse_endpoint(r.listen)
    api = parse_endpoint(r.api_listen) if r.api_listen else None
    tls_listen = parse_endpoint(r.tls_listen) if r.tls_listen else None
    for what, where in (("relay.listen", (host, port)), ("relay.tls_listen", tls_listen)):
        if where is not None and not is_loopback(where[0]) and not r.require_auth:
            raise OpenRelayRefused(
                f"{what} is {where[0]}:{where[1]}, beyond loopback, and relay.require_auth is off"
            )
    path = settings.resolve_path
    refuse_open_api(api, path(r.api_token_file) if r.api_token_file else None)

    def optional_path(value: str) -> Path | None:
        return path(value) if value else None

    smarthost = None
    if r.mode == "forward":
        smarthost = Smarthost(
            host=r.smarthost_host,
            port=r.smarthost_port,
            starttls=r.smarthost_starttls,
            username=r.smarthost_username,
            password_file=optional_path(r.smarthost_password_file),
            ca_file=optional_path(r.smarthost_ca_file),
        )
    site_tls = r.tls == "site"
    return RelayOptions(
        host=host,
        port=port,
        hostname=r.hostname or settings.site.hostname,
        mode=r.mode,
        storage_dir=path(r.storage_dir),
        max_messages=r.max_messages,
        max_age_s=r.max_age_hours * 3600.0,
        max_bytes=parse_size(r.max_bytes),
        size_limit=parse_size(r.size_limit),
        max_recipients=r.max_recipients,
        require_auth=r.require_auth,
        allow_auth_without_tls=r.allow_auth_without_tls,
        require_tls=r.require_tls,
        credentials_file=optional_path(r.credentials_file),
        store_url=settings.store.url,
        tls=r.tls,
        tls_cert_file=path(settings.tls.cert_file) if site_tls else optional_path(r.tls_cert_file),
        tls_key_file=path(settings.tls.key_file) if site_tls else optional_path(r.tls_key_file),
        tls_listen=tls_listen,
        api=api,
        api_hosts=tuple(r.api_hosts),
        api_token_file=optional_path(r.api_token_file),
        auth_max_failures=r.auth_max_failures,
        auth_lockout_s=r.auth_lockout_seconds,
        auth_failures_per_connection=r.auth_failures_per_connection,
        workers=r.workers,
        fsync=r.fsync,
        faults=tuple(r.faults),
        fault_seed=r.fault_seed,
        local_domains=tuple(r.local_domains),
        mail_root=path(r.mail_root),
        lmtp=r.lmtp,
        smarthost=smarthost,
        json_log=bool(overrides.get("json_log") or False),
        log_level=str(overrides.get("log_level") or "info"),
    )
