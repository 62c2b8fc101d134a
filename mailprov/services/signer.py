"""The DKIM signer's config: OpenDKIM's files rendered from the key folders (and the
ARC sealing keys rspamd reads, :mod:`mailprov.services.arc`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mailprov.render.opendkim import OpendkimContext, instances, render
from mailprov.render.rspamd import pid_file as rspamd_pid_file
from mailprov.services import arc
from mailprov.services.dkim import signers
from mailprov.system import rspamd
from mailprov.system.files import changed_files, write_changed
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
    arc_keys: arc.ArcKeys = field(default_factory=arc.ArcKeys)

    def to_json(self) -> dict[str, object]:
        """JSON-ready data."""
        return {
            "directory": str(self.directory),
            "changed_files": list(self.changed),
            "reloaded": self.reloaded,
            "arc_keys": self.arc_keys.to_json(),
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
    return folder, files, [p.name for p in changed_files({folder / n: t for n, t in files.items()})]


def apply(
    store: Store, settings: SiteConfig, directory: Path | None = None, *, reload_signer: bool = True
) -> SignerUpdate:
    """Write the changed files atomically, then ask a running OpenDKIM to re-read them.

    In a folder that ``deploy apply`` manages, a changed file replaces deploy's link with a
    plain file of the content deploy would render; the next ``deploy apply`` links it again.
    """
    folder = directory or settings.resolve_path(settings.dkim.opendkim_dir)
    files = render(context(store, settings, folder))
    changed = [p.name for p in write_changed({folder / n: t for n, t in files.items()})]
    reloaded = False
    if changed and reload_signer:
        for instance in instances(settings):
            reloaded = reload(Path(instance.pid_file)) or reloaded
    # rspamd's ARC seal follows the signing RSA key ([rspamd] arc_seal). rspamd would see
    # the new selectors.map within map_watch_interval (5 min); a reload makes it at once.
    arc_keys = arc.sync(store, settings)
    if arc_keys.written and reload_signer:
        reloaded = rspamd.reload(rspamd_pid_file(settings)) or reloaded
    return SignerUpdate(folder, tuple(changed), reloaded, arc_keys)
