"""The relay's run-time options, checked once from the site config's [relay] section.

:func:`options_from_settings` turns the (already layered) settings into a frozen
:class:`RelayOptions`, raising ``ConfigInvalid`` that names the setting, and
refusing an open relay (a non-loopback address without ``require_auth``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mailprov.errors import ConfigInvalid, MailprovError, OpenRelayRefused

if TYPE_CHECKING:
    from mailprov.settings import SiteConfig

MODES = ("capture", "deliver", "forward")
TLS_CHOICES = ("generate", "files", "site", "off")


@dataclass(frozen=True)
class Smarthost:
    """Where forward mode relays to."""

    host: str
    port: int = 587
    starttls: bool = True
    username: str = ""
    password_file: Path | None = None
    ca_file: Path | None = None


@dataclass(frozen=True)
class RelayOptions:
    """Everything the relay needs to run (no secrets: files are named, not read)."""

    host: str = "127.0.0.1"
    port: int = 2525
    hostname: str = "relay.localhost"
    mode: str = "capture"
    storage_dir: Path = Path("relay")
    max_messages: int = 50_000
    max_age_s: float = 7 * 86_400
    max_bytes: int = 1 << 30
    size_limit: int = 25 << 20
    max_recipients: int = 100
    require_auth: bool = False
    allow_auth_without_tls: bool = False
    credentials_file: Path | None = None
    store_url: str = ""
    tls: str = "generate"
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_listen: tuple[str, int] | None = None
    api: tuple[str, int] | None = ("127.0.0.1", 8025)
    workers: int = 1
    fsync: bool = False
    faults: tuple[str, ...] = ()
    fault_seed: int = 0
    local_domains: tuple[str, ...] = ()
    mail_root: Path = Path("/var/vmail")
    lmtp: str = ""
    smarthost: Smarthost | None = None
    json_log: bool = False
    log_level: str = "info"
    extra: dict[str, str] = field(default_factory=dict)


def parse_listen(value: str, setting: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` → (host, port). Port 0 means any free port."""
    host, sep, port = value.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigInvalid(f"{setting} must be HOST:PORT (e.g. 127.0.0.1:2525), not {value!r}")
    return host, int(port)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and 'localhost'."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def options_from_settings(  # noqa: PLR0912 (one check per setting)
    settings: SiteConfig, **overrides: object
) -> RelayOptions:
    """Check the [relay] section (plus command-line overrides) and build RelayOptions.

    Raises:
        ConfigInvalid: a value is not usable; the message names the setting.
        OpenRelayRefused: a non-loopback listener without require_auth.
    """
    from mailprov.rules.sizes import parse_size  # noqa: PLC0415

    r = settings.relay
    get = {
        **{k: getattr(r, k) for k in r.__dataclass_fields__},
        **{k: v for k, v in overrides.items() if v is not None},
    }
    mode = str(get["mode"]).lower()
    if mode not in MODES:
        raise ConfigInvalid(f"relay.mode must be one of {', '.join(MODES)}, not {mode!r}")
    tls = str(get["tls"]).lower()
    if tls not in TLS_CHOICES:
        raise ConfigInvalid(f"relay.tls must be one of {', '.join(TLS_CHOICES)}, not {tls!r}")
    host, port = parse_listen(str(get["listen"]), "relay.listen")
    try:
        max_bytes = parse_size(str(get["max_bytes"]))
        size_limit = parse_size(str(get["size_limit"]))
    except MailprovError as exc:
        raise ConfigInvalid(f"relay.max_bytes/size_limit: {exc.message}") from None
    for name in ("max_messages", "max_age_hours", "max_recipients", "workers"):
        if int(get[name]) < 0 or (name in ("workers", "max_recipients") and int(get[name]) < 1):
            raise ConfigInvalid(f"relay.{name} must be a positive number, not {get[name]}")
    if int(get["workers"]) > 64:
        raise ConfigInvalid("relay.workers must be at most 64")
    path = settings.resolve_path

    def optional_path(key: str) -> Path | None:
        return path(str(get[key])) if get[key] else None

    if tls == "files" and not (get["tls_cert_file"] and get["tls_key_file"]):
        raise ConfigInvalid("relay.tls = 'files' needs relay.tls_cert_file and relay.tls_key_file")
    smarthost = None
    if mode == "forward":
        if not get["smarthost_host"]:
            raise ConfigInvalid("relay.mode = 'forward' needs relay.smarthost_host (and _port)")
        if get["smarthost_username"] and not get["smarthost_password_file"]:
            raise ConfigInvalid(
                "relay.smarthost_username is set but relay.smarthost_password_file is not",
                hint="put the password alone in a file readable only by the relay (0600)",
            )
        smarthost = Smarthost(
            host=str(get["smarthost_host"]),
            port=int(get["smarthost_port"]),
            starttls=bool(get["smarthost_starttls"]),
            username=str(get["smarthost_username"]),
            password_file=optional_path("smarthost_password_file"),
            ca_file=optional_path("smarthost_ca_file"),
        )
    api = parse_listen(str(get["api_listen"]), "relay.api_listen") if get["api_listen"] else None
    tls_listen = (
        parse_listen(str(get["tls_listen"]), "relay.tls_listen") if get["tls_listen"] else None
    )
    require_auth = bool(get["require_auth"])
    for what, where in (("relay.listen", (host, port)), ("relay.tls_listen", tls_listen)):
        if where is not None and not is_loopback(where[0]) and not require_auth:
            raise OpenRelayRefused(
                f"{what} is {where[0]}:{where[1]}, beyond loopback, and relay.require_auth is off"
            )
    if api is not None and not is_loopback(api[0]) and not get.get("api_public"):
        raise OpenRelayRefused(
            f"relay.api_listen {api[0]}:{api[1]} is beyond loopback; the API has no authentication",
            hint="keep the API on 127.0.0.1 and reach it through an SSH tunnel",
        )
    return RelayOptions(
        host=host,
        port=port,
        hostname=str(get["hostname"] or settings.site.hostname),
        mode=mode,
        storage_dir=path(str(get["storage_dir"])),
        max_messages=int(get["max_messages"]),
        max_age_s=int(get["max_age_hours"]) * 3600.0,
        max_bytes=max_bytes,
        size_limit=size_limit,
        max_recipients=int(get["max_recipients"]),
        require_auth=require_auth,
        allow_auth_without_tls=bool(get["allow_auth_without_tls"]),
        credentials_file=optional_path("credentials_file"),
        store_url=settings.store.url,
        tls=tls,
        tls_cert_file=path(settings.tls.cert_file)
        if tls == "site"
        else optional_path("tls_cert_file"),
        tls_key_file=path(settings.tls.key_file)
        if tls == "site"
        else optional_path("tls_key_file"),
        tls_listen=tls_listen,
        api=api,
        workers=int(get["workers"]),
        fsync=bool(get["fsync"]),
        faults=tuple(get["faults"]),
        fault_seed=int(get["fault_seed"]),
        local_domains=tuple(d.lower() for d in get["local_domains"]),
        mail_root=path(str(get["mail_root"])),
        lmtp=str(get["lmtp"]),
        smarthost=smarthost,
        json_log=bool(get.get("json_log", False)),
        log_level=str(get.get("log_level", "info")),
    )
