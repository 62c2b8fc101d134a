"""Creating a site: its config file and its store (``mailprov init``), and schema upgrades."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mailprov.errors import AlreadyExists, FileExists, InvalidValue
from mailprov.render.units import CONFIG_GROUP
from mailprov.rules.addresses import normalise_domain
from mailprov.rules.tomledit import set_keys, toml_string
from mailprov.services.accounts import add_domain
from mailprov.settings import CONFIG_NAME, load_settings
from mailprov.store import open_store, redact_url
from mailprov.store.migrate import UpgradeResult, upgrade
from mailprov.system.files import atomic_write, share_with_group
from mailprov.system.secrets import load_pepper

if TYPE_CHECKING:
    from mailprov.services.accounts import Actor

DEFAULT_STORE = "sqlite:///mailprov.sqlite"

CONFIG_TEMPLATE = """\
# mailprov site config, written by 'mailprov init'.
# Every setting and its default is described in configs/example.toml of the
# mailprov sources; 'mailprov config show --origin' shows what is in effect.

[site]
hostname = {hostname}
domain = {domain}

[store]
# A relative sqlite path is relative to this file's folder.
url = {store_url}
"""


@dataclass(frozen=True)
class InitResult:
    """What ``init`` did."""

    config_file: Path
    config_written: bool
    store_url: str
    upgrade: UpgradeResult
    domain: str | None
    domain_added: bool
    #: The group that may read a config written now (None: it kept the writer's group).
    config_group: str | None = None


def init_site(
    directory: Path,
    *,
    actor: Actor,
    domain: str | None = None,
    store_url: str | None = None,
    hostname: str | None = None,
) -> InitResult:
    """Create (or bring up to date) a site folder: config file, store, first domain.

    Idempotent: run again with the same arguments, it changes nothing. An existing
    config file is never overwritten; asking for a different store than it names
    is an error.
    """

    a_label = normalise_domain(domain) if domain else None
    directory = directory.expanduser().resolve()
    if directory.exists() and not directory.is_dir():
        raise InvalidValue(f"{directory} exists and is not a folder")
    config_path = directory / CONFIG_NAME
    written = False
    group = None
    if config_path.exists():
        existing = load_settings(config_file=config_path, env={})
        wanted = load_settings(
            config_file=config_path, env={}, flags={"store.url": store_url}
        ).store.url
        if store_url and wanted != existing.store.url:
            raise FileExists(
                f"{config_path} already names the store {redact_url(existing.store.url)}",
                hint="edit the file, or init another folder",
            )
        url = existing.store.url
    else:
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InvalidValue(f"cannot create {directory}: {exc.strerror}") from None
        text = CONFIG_TEMPLATE.format(
            hostname=toml_string(
                hostname or (f"mail.{a_label}" if a_label else "mail.example.test")
            ),
            domain=toml_string(a_label or ""),
            store_url=toml_string(store_url or DEFAULT_STORE),
        )
        # Validate what we are about to write before touching the store.
        atomic_write(config_path, text, mode=0o640)
        written = True
        try:
            url = load_settings(config_file=config_path, env={}).store.url
        except Exception:
            config_path.unlink()
            raise
        # The relay's unit reads the config through this group (README, "File layout on a host").
        group = CONFIG_GROUP if share_with_group(config_path, CONFIG_GROUP) else None
    try:
        result = upgrade(url)
    except Exception:
        if written:
            config_path.unlink()
        raise
    # The pepper now, while the folder is writable: 'mailprov serve' runs with the
    # config's folder read-only (ProtectSystem=strict) and could not create it.
    settings = load_settings(config_file=config_path, env={})
    load_pepper(settings.resolve_path(settings.identity.pepper_file))
    added = False
    if a_label:
        store = open_store(url)
        try:
            add_domain(store, a_label, actor=actor)
            added = True
        except AlreadyExists:
            pass
        finally:
            store.close()
    return InitResult(config_path, written, url, result, a_label, added, group)


def set_config_values(config_path: Path, section: str, values: dict[str, str]) -> bool:
    """Set ``[section]`` keys in the config file, keeping its comments; True if it changed.

    The new text is loaded and validated before it replaces the file (atomically, with
    the file's mode), so a value the settings refuse leaves the file as it was.
    """
    old = config_path.read_text(encoding="utf-8")
    new = set_keys(old, section, values)
    if new == old:
        return False
    staged = config_path.with_name(f".{config_path.name}.new")
    try:
        atomic_write(staged, new, mode=0o600)
        load_settings(config_file=staged, env={})
        atomic_write(config_path, new, mode=config_path.stat().st_mode & 0o777)
    finally:
        staged.unlink(missing_ok=True)
    return True
