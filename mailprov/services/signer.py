"""The DKIM signer's config: OpenDKIM's files rendered from the key folders."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mailprov.render.opendkim import OpendkimContext, instances, render
from mailprov.services.dkim import signers
from mailprov.system.files import atomic_write
from mailprov.system.opendkim import reload

if TYPE_CHECKING:
    from mailprov.settings import SiteConfig
    from mailprov.store import Store


@dataclass(frozen=True)
class SignerUpdate:
    """What writing the signer's config did."""

    directory: Path
    changed: tuple[str, ...]
    reloaded: bool

    def to_json(self) -> dict[str, object]:
        """JSON-ready data."""
        return {
            "directory": str(self.directory),
            "changed_files": list(self.changed),
            "reloaded": self.reloaded,
        }


def context(store: Store, settings: SiteConfig, directory: Path) -> OpendkimContext:
    """The OpenDKIM template context for every signing key in the store's domains."""
    return OpendkimContext(
        config_dir=str(directory),
        user=settings.dkim.signer_user,
        instances=instances(settings, signers(store, settings)),
        trusted_hosts=tuple(settings.dkim.trusted_hosts),
    )


def plan(
    store: Store, settings: SiteConfig, directory: Path | None = None
) -> tuple[Path, dict[str, str], list[str]]:
    """(folder, rendered files, names that differ from what is on disk): a pure diff."""
    folder = directory or settings.resolve_path(settings.dkim.opendkim_dir)
    files = render(context(store, settings, folder))
    changed = []
    for name, text in files.items():
        try:
            current = (folder / name).read_text("utf-8")
        except OSError:
            current = None
        if current != text:
            changed.append(name)
    return folder, files, changed


def apply(
    store: Store, settings: SiteConfig, directory: Path | None = None, *, reload_signer: bool = True
) -> SignerUpdate:
    """Write the changed files atomically, then ask a running OpenDKIM to re-read them."""
    folder, files, changed = plan(store, settings, directory)
    folder.mkdir(parents=True, exist_ok=True)
    for name in changed:
        atomic_write(folder / name, files[name], mode=0o644)
    reloaded = False
    if changed and reload_signer:
        for instance in instances(settings):
            reloaded = reload(Path(instance.pid_file)) or reloaded
    return SignerUpdate(folder, tuple(changed), reloaded)
