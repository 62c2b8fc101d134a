"""rspamd's files: which ones deploy renders, and the values their templates print.

rspamd runs with the package's defaults (``/etc/rspamd``: modules, symbols, scores)
and mailprov's own top-level ``rspamd.conf`` plus ``local.d/`` (settings merged into
a module's defaults) and ``override.d/`` (settings that replace them) in
``[rspamd] config_dir``. rspamd is started and checked with
``--var=LOCAL_CONFDIR=<config_dir>``, so every module reads our files there
(:func:`mailprov.system.rspamd.variables`). Nothing is rendered while ``[rspamd] enabled`` is off.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from mailprov.errors import ConfigInvalid
from mailprov.rules.dnscheck import parse_nameserver
from mailprov.settings.checks import parse_endpoint

if TYPE_CHECKING:
    from mailprov.settings import SiteConfig

#: The files under config_dir, each from templates/rspamd/<name>.j2.
FILES = (
    "rspamd.conf",
    "local.d/options.inc",
    "local.d/redis.conf",
    "local.d/actions.conf",
    "local.d/dmarc.conf",
    "local.d/milter_headers.conf",
    "local.d/dkim.conf",
    "local.d/settings.conf",
    "local.d/greylist.conf",
    "override.d/rbl.conf",
    "override.d/asn.conf",
    "override.d/fuzzy_check.conf",
    "override.d/dkim_signing.conf",
    "override.d/arc.conf",
)

UNIT = "mailprov-rspamd.service"

#: ARC sealing keys (mailprov.services.arc writes them): this folder under [rspamd] db_dir,
#: with DOMAIN.SELECTOR.key files and the map naming each domain's selector.
ARC_DIR = "arc"
ARC_SELECTORS = "selectors.map"

#: Dovecot's files for learning from the owner's moves (IMAPSieve), under dovecot_dir,
#: each from templates/dovecot/2.3/imapsieve/<file name>.j2, with its mode.
LEARN_FILES = (
    ("imapsieve/learn-spam.sieve", 0o644),
    ("imapsieve/learn-ham.sieve", 0o644),
    ("imapsieve/bin/rspamd-learn", 0o755),
)
#: Where, in each mail home, Pigeonhole keeps the compiled learning scripts (dovecot_dir
#: belongs to root; the imap process runs as the vmail user).
LEARN_BIN_CACHE = ".imapsieve"


def _socket(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def milter(config: SiteConfig) -> str:
    """Postfix's name for rspamd's milter: ``inet:HOST:PORT``."""
    rs = config.rspamd
    return f"inet:{_socket(rs.host, rs.milter_port)}"


def learning(config: SiteConfig, dovecot_dir: str) -> dict[str, Any]:
    """The ``imapsieve`` template values: the learning scripts, their program and where
    it reaches rspamd's controller (``enabled`` False while rspamd is off)."""
    rs = config.rspamd
    if not rs.enabled:
        return {"enabled": False}
    folder = f"{dovecot_dir}/imapsieve"
    return {
        "enabled": True,
        "spam_script": f"{folder}/learn-spam.sieve",
        "ham_script": f"{folder}/learn-ham.sieve",
        "bin_dir": f"{folder}/bin",
        "bin_cache": LEARN_BIN_CACHE,
        "controller": _socket(rs.host, rs.controller_port),
    }


def _secure_ips(config: SiteConfig) -> str:
    """Who may use the controller without a password: loopback, and rspamd's own address
    (rspamc on this host connects from it when [rspamd] host is not loopback)."""
    ips = dict.fromkeys(["127.0.0.1", "::1", config.rspamd.host])
    return ", ".join(f'"{ip}"' for ip in ips)


def _local_addrs(config: SiteConfig) -> str:
    nets = [
        ipaddress.ip_network(n.strip("[]").replace("]/", "/"), strict=False)
        for n in config.postfix.mynetworks
    ]
    return ", ".join(f'"{n}"' for n in nets)


def pid_file(config: SiteConfig) -> Path:
    """The PID file the rendered rspamd.conf names (in [rspamd] run_dir)."""
    return config.resolve_path(config.rspamd.run_dir) / "rspamd.pid"


def context(config: SiteConfig, config_dir: str) -> dict[str, Any]:
    """The ``rspamd`` template values (empty ``config_dir`` when rspamd is off).

    Raises:
        ConfigInvalid: the scores are out of order (add_header must come before reject).
    """
    rs = config.rspamd
    if not rs.enabled:
        return {"enabled": False, "milter": ""}
    if not rs.add_header_score < rs.reject_score or (
        rs.greylist and not rs.greylist_score < rs.add_header_score
    ):
        raise ConfigInvalid(
            f"rspamd scores out of order: greylist_score {rs.greylist_score}, "
            f"add_header_score {rs.add_header_score}, reject_score {rs.reject_score}",
            hint="each action needs a higher score than the one before: "
            "greylist_score < add_header_score < reject_score",
        )
    run_dir = str(config.resolve_path(rs.run_dir))
    return {
        "enabled": True,
        "milter": milter(config),
        "config_dir": config_dir,
        "db_dir": str(config.resolve_path(rs.db_dir)),
        "arc_seal": rs.arc_seal,
        "arc_dir": f"{config.resolve_path(rs.db_dir)}/{ARC_DIR}",
        "arc_selectors": ARC_SELECTORS,
        "run_dir": run_dir,
        "pid_file": str(pid_file(config)),
        "log_file": str(config.resolve_path(rs.log_file)) if rs.log_file else "",
        "user": rs.user,
        "milter_socket": _socket(rs.host, rs.milter_port),
        "normal_socket": _socket(rs.host, rs.normal_port),
        "controller_socket": _socket(rs.host, rs.controller_port),
        "secure_ips": _secure_ips(config),
        "redis": rs.redis,
        "nameservers": ", ".join(f'"{parse_nameserver(n)}"' for n in rs.nameservers),
        "local_addrs": _local_addrs(config),
        "check_local": "true" if rs.check_local else "false",
        "rbl": rs.rbl,
        "greylist": rs.greylist,
        "greylist_score": rs.greylist_score,
        "add_header_score": rs.add_header_score,
        "reject_score": rs.reject_score,
    }


def unit_context(config: SiteConfig, values: dict[str, Any]) -> dict[str, Any]:
    """The unit's sandbox values: its writable folders and IP peers."""
    if not values["enabled"]:
        return {}
    state = _under(values["db_dir"], "/var/lib")
    runtime = _under(values["run_dir"], "/run")
    read_write = [
        p for p, rel in ((values["db_dir"], state), (values["run_dir"], runtime)) if not rel
    ]
    if values["log_file"]:
        read_write.append(str(PurePosixPath(values["log_file"]).parent))
    rs = config.rspamd
    hosts = [rs.host, parse_endpoint(rs.redis)[0]]
    hosts += [parse_nameserver(n).address for n in rs.nameservers]
    loopback = bool(rs.nameservers) and all(_loopback(h) for h in hosts)
    return {
        "state_directory": state,
        "runtime_directory": runtime,
        "read_write": " ".join(read_write),
        "ip_allow": "localhost" if loopback else "",
    }


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _under(path: str, base: str) -> str:
    """``path`` relative to ``base`` (for StateDirectory=/RuntimeDirectory=), or ''."""
    p = PurePosixPath(path)
    return str(p.relative_to(base)) if p.is_relative_to(base) and p != PurePosixPath(base) else ""
