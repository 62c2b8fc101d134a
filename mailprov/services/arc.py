"""ARC sealing keys for rspamd (``[rspamd] arc_seal``): each domain's signing RSA DKIM key,
where rspamd's ``arc`` module reads it.

rspamd runs as its own user and cannot read the keys in ``[dkim] key_dir`` (0600, owned
by OpenDKIM's user, which OpenDKIM insists on). So the signing RSA key of each domain is
also written, 0600 and owned by ``[rspamd] user``, into ``ARC_DIR`` under ``[rspamd]
db_dir`` as ``DOMAIN.SELECTOR.key``, with ``selectors.map`` (``DOMAIN SELECTOR`` lines)
naming the one to use. ``dkim activate`` and ``dkim retire`` (through
:func:`mailprov.services.signer.apply`) and ``deploy apply`` call :func:`sync`, so the seal's
key switches as the signature's does (the signer update reloads rspamd when a key changed);
a retired key's copy is deleted here as its original is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mailprov.render.rspamd import ARC_DIR, ARC_SELECTORS
from mailprov.services.dkim import signers
from mailprov.system.files import atomic_write, ensure_dir
from mailprov.system.secrets import DKIM_KEY, read_secret, user_ids, write_secret

if TYPE_CHECKING:
    from mailprov.settings import SiteConfig
    from mailprov.store import Store


def arc_dir(settings: SiteConfig) -> Path:
    """Where rspamd's arc module finds its keys and selectors.map."""
    return settings.resolve_path(settings.rspamd.db_dir) / ARC_DIR


@dataclass(frozen=True)
class ArcKeys:
    """What :func:`sync` wrote and removed (file names in :func:`arc_dir`)."""

    written: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        """JSON-ready data (names only, never a key)."""
        return {"written": list(self.written), "removed": list(self.removed)}


def sync(store: Store, settings: SiteConfig) -> ArcKeys:
    """Make :func:`arc_dir` hold exactly each domain's signing RSA key and the map naming it
    (nothing while ``[rspamd] enabled`` or ``arc_seal`` is off).

    Raises:
        DkimKeyUnusable, DkimKeyUnsafe: a signing key file is missing or readable by others.
    """
    rs = settings.rspamd
    if not (rs.enabled and rs.arc_seal):
        return ArcKeys()
    owner = user_ids(rs.user, setting="rspamd.user")
    folder = arc_dir(settings)
    ensure_dir(folder, mode=0o700, owner=rs.user if owner else None)
    wanted: dict[str, tuple[str, Path]] = {}
    for key in signers(store, settings):
        if key.algorithm == "rsa-2048":
            wanted[key.domain] = (key.selector, key.key_file)
    written = []
    keep = {ARC_SELECTORS}
    for domain, (selector, key_file) in sorted(wanted.items()):
        name = f"{domain}.{selector}.key"
        keep.add(name)
        pem = read_secret(key_file, DKIM_KEY)
        copy = folder / name
        if copy.exists():
            if read_secret(copy, DKIM_KEY) == pem:
                continue
            copy.unlink()
        write_secret(copy, pem, owner=owner)
        written.append(name)
    lines = "".join(f"{d} {s}\n" for d, (s, _) in sorted(wanted.items()))
    map_file = folder / ARC_SELECTORS
    if not map_file.exists() or map_file.read_text("utf-8") != lines:
        atomic_write(map_file, lines, mode=0o644)
        written.append(ARC_SELECTORS)
    removed = []
    for old in sorted(folder.glob("*.key")):
        if old.name not in keep:
            old.unlink()
            removed.append(old.name)
    return ArcKeys(tuple(written), tuple(removed))
