"""OpenDKIM's config files (opendkim.conf, KeyTable, SigningTable, TrustedHosts) from templates.

Debian 12's OpenDKIM (2.11.0 beta2) picks the signing algorithm per process
(``SignatureAlgorithm``), not per key, so dual RSA + Ed25519 signing runs one
instance per algorithm, each its own milter: ``opendkim.conf``/``KeyTable``/
``SigningTable`` for RSA and ``opendkim-ed25519.conf``/``KeyTable-ed25519``/
``SigningTable-ed25519`` for Ed25519; ``TrustedHosts`` is shared.

Rendered with the one environment of :mod:`mailprov.render.environment`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from mailprov import __version__
from mailprov.render.environment import environment

if TYPE_CHECKING:
    from mailprov.settings import SiteConfig

#: DKIM algorithm (mailprov's name) -> (OpenDKIM SignatureAlgorithm, file name suffix).
INSTANCES = {"rsa-2048": ("rsa-sha256", ""), "ed25519": ("ed25519-sha256", "-ed25519")}


@dataclass(frozen=True)
class SigningKey:
    """One signing key as OpenDKIM's tables name it."""

    domain: str
    selector: str
    key_file: str

    @property
    def key_name(self) -> str:
        """The KeyTable key name: the record's DNS name."""
        return f"{self.selector}._domainkey.{self.domain}"


@dataclass(frozen=True)
class Instance:
    """One OpenDKIM process: its algorithm, milter socket, PID file and keys."""

    algorithm: str
    socket: str
    pid_file: str
    keys: tuple[SigningKey, ...]

    @property
    def suffix(self) -> str:
        """File name suffix ('' for RSA, '-ed25519')."""
        return INSTANCES[self.algorithm][1]


@dataclass(frozen=True)
class OpendkimContext:
    """Everything the templates use, computed here rather than in Jinja."""

    config_dir: str
    user: str
    instances: tuple[Instance, ...]
    trusted_hosts: tuple[str, ...]

    def values(self, instance: Instance) -> dict[str, Any]:
        """The template variables of one instance."""
        keys = sorted(instance.keys, key=lambda k: (k.domain, k.selector))
        return {
            "version": __version__,
            "config_dir": self.config_dir,
            "suffix": instance.suffix,
            "signature_algorithm": INSTANCES[instance.algorithm][0],
            "socket": instance.socket,
            "pid_file": instance.pid_file,
            "user": self.user,
            "keys": keys,
            "trusted_hosts": self.trusted_hosts,
        }


def render(context: OpendkimContext) -> dict[str, str]:
    """File name -> rendered text, for every instance's files and the shared TrustedHosts."""
    env = environment()
    out: dict[str, str] = {}
    for instance in context.instances:
        values = context.values(instance)
        for base, template in (
            ("opendkim", "opendkim/opendkim.conf.j2"),
            ("KeyTable", "opendkim/KeyTable.j2"),
            ("SigningTable", "opendkim/SigningTable.j2"),
        ):
            name = (
                f"{base}{instance.suffix}.conf"
                if base == "opendkim"
                else f"{base}{instance.suffix}"
            )
            out[name] = env.get_template(template).render(values, template=template)
    if context.instances:
        values = context.values(context.instances[0])
        template = "opendkim/TrustedHosts.j2"
        out["TrustedHosts"] = env.get_template(template).render(values, template=template)
    return out


def milter_sockets(instances: Sequence[Instance]) -> list[str]:
    """Postfix ``smtpd_milters`` entries (``inet:HOST:PORT``) for the instances, RSA first."""
    out = []
    for instance in instances:
        port, _, host = instance.socket.removeprefix("inet:").partition("@")
        out.append(f"inet:{host}:{port}")
    return out


class _Key(Protocol):
    """What :func:`instances` reads of a signing key (services.dkim.DkimKey has it)."""

    @property
    def domain(self) -> str: ...
    @property
    def selector(self) -> str: ...
    @property
    def algorithm(self) -> str: ...
    @property
    def key_file(self) -> object: ...


def instances(settings: SiteConfig, keys: Sequence[_Key] = ()) -> tuple[Instance, ...]:
    """One OpenDKIM instance per algorithm of ``[dkim] algorithms`` (RSA first)."""
    dk = settings.dkim
    where = {
        "rsa-2048": (dk.milter_port, dk.pid_file),
        "ed25519": (dk.ed25519_milter_port, dk.ed25519_pid_file),
    }
    out = []
    for algorithm in INSTANCES:
        if algorithm not in dk.algorithms:
            continue
        port, pid_file = where[algorithm]
        mine = tuple(
            SigningKey(k.domain, k.selector, str(k.key_file))
            for k in keys
            if k.algorithm == algorithm
        )
        socket = f"inet:{port}@{dk.milter_host}"
        out.append(Instance(algorithm, socket, str(settings.resolve_path(pid_file)), mine))
    return tuple(out)


def postfix_milters(settings: SiteConfig) -> list[str]:
    """What Postfix's ``smtpd_milters`` / ``non_smtpd_milters`` list for the signer(s)."""
    return milter_sockets(instances(settings))
