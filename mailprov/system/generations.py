"""Generations: each ``deploy apply`` installs one complete set of files, switched in at once.

The state folder (``[deploy] state_dir``, or ``DIR/.mailprov`` with ``--target DIR``)::

    current -> generations/0007        the one symlink that is switched
    manifest.json -> current/manifest.json
    generations/0006/                  older sets, kept for rollback ([deploy] keep_generations)
    generations/0007/manifest.json     {"files": {path: {sha256, file, mode, group}}, "previous"}
    generations/0007/postfix/main.cf   the files, by component
    generations/.0008.tmp/             being written (a killed run leaves it; the next removes it)
    lock                               flock: one install at a time

Every installed path is a symlink through ``current``, e.g.
``/etc/postfix/main.cf -> /var/lib/mailprov/deploy/current/postfix/main.cf``. The links
are the same for every generation, so renaming a fresh ``current`` link over the old one
(one ``rename()``) switches every file at once: each open of an installed path sees the old
set or the new set, never a mix, also after a SIGKILL or a power loss (files and folders
are fsynced before the switch). A path new in a generation gets its link before the switch:
until then it dangles (points into the old set, which lacks it), and readers see no file,
as before. A path that is not our link yet (a first install over existing files) is
replaced by one only where that is invisible to readers; otherwise its current content is
first captured in an "adopted" generation that is switched in before the new one.
"""

from __future__ import annotations

import contextlib
import fcntl
import grp
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailprov.system.files import atomic_write, ensure_dir, fsync_dir, read_bytes, remove_file

GENERATIONS = "generations"
CURRENT = "current"
MANIFEST = "manifest.json"
LOCK = "lock"
#: Folders and files left by the state layout before generations (removed when seen).
LEGACY = ("previous", ".previous-*", ".old-*")

#: Called with the name of each step as it completes ("file:postfix/main.cf", "switched", ...).
Checkpoint = Callable[[str], None]


def _nothing(_step: str) -> None:
    """The default checkpoint: do nothing."""


def sha256(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def manifest_files(entries: Sequence[Entry]) -> dict[str, dict[str, Any]]:
    """What a generation's manifest records of ``entries``: path -> checksum, file, mode, group."""
    return {
        str(e.path): {
            "sha256": sha256(e.data),
            "file": e.file,
            "mode": f"{e.mode:04o}",
            "group": e.group,
        }
        for e in entries
    }


@dataclass(frozen=True)
class Entry:
    """One file of a generation: where it is installed, and where it sits inside the set."""

    path: Path  # the installed path (a symlink to STATE/current/<file>)
    file: str  # "<component>/<path under the component's folder>"
    data: bytes
    mode: int
    group: str | None


@dataclass(frozen=True)
class Manifest:
    """What one generation holds (empty when nothing was installed yet)."""

    name: str | None = None
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    previous: str | None = None

    def checksums(self) -> dict[str, str]:
        """``{installed path: sha256}``."""
        return {path: str(info.get("sha256")) for path, info in self.files.items()}


@dataclass(frozen=True)
class Installed:
    """What :func:`install` did."""

    generation: str
    removed: list[str]
    adopted: str | None


def current_name(state: Path) -> str | None:
    """The active generation's name, or None before the first install."""
    try:
        return Path(os.readlink(state / CURRENT)).name
    except OSError:
        return None


def names(state: Path) -> list[str]:
    """Every complete generation, oldest first."""
    try:
        found = [p.name for p in (state / GENERATIONS).iterdir() if p.name.isdigit()]
    except FileNotFoundError:
        return []
    return sorted(found, key=int)


def read_manifest(state: Path, name: str | None = None) -> Manifest:
    """The manifest of generation ``name`` (default: the active one).

    Before the first generation, the flat ``{"files": {path: sha256}}`` manifest an older
    mailprov kept in the state folder is read instead, so its hand-edit records still count.
    """
    name = name or current_name(state)
    where = state / GENERATIONS / name / MANIFEST if name else state / MANIFEST
    try:
        data = json.loads(where.read_text("utf-8"))
    except (OSError, ValueError):
        return Manifest()
    files = data.get("files", {}) if isinstance(data, dict) else {}
    if name is None:
        return Manifest(None, {str(k): {"sha256": str(v)} for k, v in files.items()})
    return Manifest(name, {str(k): dict(v) for k, v in files.items()}, data.get("previous"))


def link_target(state: Path, file: str) -> Path:
    """What an installed path's symlink points at."""
    return state / CURRENT / file


def is_our_link(path: Path, state: Path, file: str) -> bool:
    """True if ``path`` is the symlink :func:`install` makes for ``file``."""
    try:
        return os.readlink(path) == str(link_target(state, file))
    except OSError:
        return False


def load_entries(state: Path, name: str) -> list[Entry]:
    """The files of generation ``name``, as entries to install again (for rollback)."""
    manifest = read_manifest(state, name)
    folder = state / GENERATIONS / name
    return [
        Entry(
            Path(path),
            str(info["file"]),
            (folder / str(info["file"])).read_bytes(),
            int(str(info["mode"]), 8),
            info.get("group"),
        )
        for path, info in manifest.files.items()
    ]


@contextlib.contextmanager
def lock(state: Path) -> Iterator[None]:
    """Hold the state folder's lock (released by the kernel if the process dies)."""
    if ensure_dir(state):
        _traversable(state)
    fd = os.open(state / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _traversable(folder: Path) -> None:
    """0755 whatever the umask: Postfix's and Dovecot's users traverse the state folder to
    reach the files they read (the secret ones are 0640 root:their group)."""
    os.chmod(folder, 0o755)  # noqa: S103  (folders only; no file is world-writable)


def _rmtree(path: Path) -> None:
    """Remove a folder so that a kill half-way leaves only a ``.tmp`` name behind."""
    doomed = path.with_name(f".{path.name}.{secrets.token_hex(4)}.del.tmp")
    with contextlib.suppress(FileNotFoundError):
        path.rename(doomed)
        shutil.rmtree(doomed)


def remove_leftovers(state: Path, paths: list[Path]) -> list[str]:
    """Remove what killed runs leave: temporary files and links, half-written generations,
    complete generations never switched in, links of paths the active generation no longer
    has (they dangle), and the older layout's previous set.

    ``paths`` are the installed paths whose folders may hold a temporary link.
    """
    removed = []
    gens = state / GENERATIONS
    active = current_name(state)
    candidates: list[Path] = []
    if gens.is_dir():
        candidates += [p for p in gens.iterdir() if p.name.endswith(".tmp")]
        candidates += [gens / n for n in names(state) if active is None or int(n) > int(active)]
    if state.is_dir():
        candidates += [p for p in state.iterdir() if p.name.endswith(".tmp")]
        for pattern in LEGACY:
            candidates += list(state.glob(pattern))
    for parent in {p.parent for p in paths}:
        wanted = {p.name for p in paths if p.parent == parent}
        with contextlib.suppress(FileNotFoundError):
            candidates += [
                p
                for p in parent.iterdir()
                if p.name.endswith(".tmp") and p.name[1:].rsplit(".", 2)[0] in wanted
            ]
    active_files = read_manifest(state).files if active else {}
    for name in names(state):  # older ones, and newer ones never switched in
        if name != active:
            for installed, info in read_manifest(state, name).files.items():
                link = Path(installed)
                if installed not in active_files and is_our_link(link, state, str(info["file"])):
                    candidates.append(link)  # a path no longer installed: the link dangles
    for path in candidates:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            remove_file(path)
        removed.append(str(path))
    return removed


def write_generation(
    state: Path, entries: list[Entry], previous: str | None, on_step: Checkpoint = _nothing
) -> str:
    """Write a new, complete generation and flush it to disk; returns its name.

    Files are written (each fsynced) into ``generations/.NNNN.tmp``, every folder of it is
    fsynced, and only then is it renamed to ``generations/NNNN`` (and ``generations/`` fsynced):
    a folder with a plain number is always complete.
    """
    gens = state / GENERATIONS
    if ensure_dir(gens):
        _traversable(gens)
    number = max((int(n) for n in names(state)), default=0) + 1
    name = f"{number:04d}"
    tmp = gens / f".{name}.tmp"
    tmp.mkdir()
    _traversable(tmp)
    folders = {tmp}
    for entry in entries:
        dest = tmp / entry.file
        for parent in reversed(dest.relative_to(tmp).parents[:-1]):
            if (tmp / parent) not in folders:
                (tmp / parent).mkdir(exist_ok=True)
                _traversable(tmp / parent)
                folders.add(tmp / parent)
        atomic_write(dest, entry.data, mode=entry.mode, owner=0, group=entry.group)
        on_step(f"file:{entry.file}")
    body = {"files": manifest_files(entries), "previous": previous}
    atomic_write(tmp / MANIFEST, json.dumps(body, indent=1, sort_keys=True) + "\n", mode=0o644)
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        fsync_dir(folder)
    on_step("generation-synced")
    tmp.rename(gens / name)
    fsync_dir(gens)
    on_step("generation-complete")
    return name


def _link(path: Path, target: Path) -> None:
    """Point ``path`` at ``target``: a new symlink renamed over whatever is there."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    os.symlink(target, tmp)
    try:
        os.replace(tmp, path)
    except BaseException:
        remove_file(tmp)
        raise


def switch(state: Path, name: str, on_step: Checkpoint = _nothing) -> None:
    """Make generation ``name`` the active one: one rename of a fresh ``current`` symlink."""
    _link(state / CURRENT, Path(GENERATIONS) / name)
    fsync_dir(state)
    on_step("switched")
    if not (state / MANIFEST).is_symlink():  # once; it replaces an older flat manifest
        _link(state / MANIFEST, Path(CURRENT) / MANIFEST)
        fsync_dir(state)


def prune(state: Path, keep: int) -> list[str]:
    """Remove the oldest generations beyond ``keep``; never the active one or its previous."""
    active = current_name(state)
    spared = {active, read_manifest(state).previous}
    existing = names(state)
    doomed = [n for n in existing[: max(0, len(existing) - keep)] if n not in spared]
    for name in doomed:
        _rmtree(state / GENERATIONS / name)
    return doomed


def _visible_now(paths: list[str], files: dict[str, str], state: Path) -> dict[str, bytes | None]:
    """What a reader of each path sees now, and what the active generation holds for it."""
    active = current_name(state)
    out: dict[str, bytes | None] = {}
    for path in paths:
        file = files.get(path)
        out[path] = read_bytes(state / GENERATIONS / active / file) if active and file else None
    return out


def install(
    state: Path, entries: list[Entry], *, keep: int, on_step: Checkpoint = _nothing
) -> Installed:
    """Write ``entries`` as a new generation and switch to it (the caller holds :func:`lock`).

    Order: adopt foreign paths if needed, write and fsync the generation, create missing
    links, switch ``current``, then replace foreign paths whose content already is the new
    one, remove links of paths no longer installed, and prune old generations.
    """
    manifest = read_manifest(state)
    old_files = {p: str(i["file"]) for p, i in manifest.files.items() if manifest.name}
    wanted = {str(e.path): e for e in entries}
    foreign = [p for p, e in wanted.items() if not is_our_link(Path(p), state, e.file)]
    in_current = _visible_now(foreign, old_files, state)
    before = [p for p in foreign if read_bytes(Path(p)) == in_current[p]]
    after = [p for p in foreign if p not in before and read_bytes(Path(p)) == wanted[p].data]
    adopted = None
    if len(before) + len(after) < len(foreign):
        adopted = _adopt(state, sorted({*wanted, *old_files}), wanted, old_files, manifest.name)
        switch(state, adopted)
        on_step("adopted")
        manifest = read_manifest(state)
        old_files = {p: str(i["file"]) for p, i in manifest.files.items()}
        before, after = foreign, []
    name = write_generation(state, entries, manifest.name, on_step)
    for path in before:
        _link(Path(path), link_target(state, wanted[path].file))
        on_step(f"link:{path}")
    _fsync_parents(before)
    switch(state, name, on_step)
    for path in after:
        _link(Path(path), link_target(state, wanted[path].file))
        on_step(f"link:{path}")
    stale = [p for p, f in old_files.items() if p not in wanted and is_our_link(Path(p), state, f)]
    for path in stale:
        remove_file(Path(path))
    _fsync_parents(after + stale)
    on_step("stale-removed")
    prune(state, keep)
    on_step("pruned")
    return Installed(name, stale, adopted)


def _adopt(
    state: Path,
    paths: list[str],
    wanted: dict[str, Entry],
    old_files: dict[str, str],
    previous: str | None,
) -> str:
    """A generation holding exactly what readers see now at ``paths`` (the set being replaced)."""
    entries = []
    for path in paths:
        data = read_bytes(Path(path))
        if data is None:
            continue
        st = Path(path).stat()
        file = wanted[path].file if path in wanted else old_files[path]
        group = _group_name(st.st_gid)
        entries.append(Entry(Path(path), file, data, st.st_mode & 0o7777, group))
    return write_generation(state, entries, previous)


def _group_name(gid: int) -> str | None:
    if gid == 0:
        return None
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return None


def _fsync_parents(paths: list[str]) -> None:
    for parent in {Path(p).parent for p in paths}:
        fsync_dir(parent)


def revert(state: Path) -> str:
    """Make the generation before the active one active again (after a failed reload).

    The abandoned one is newer than the active one, so the next run removes it. Returns the
    name of the generation now active (an empty one when there was none before).
    """
    manifest = read_manifest(state)
    name = manifest.previous or write_generation(state, [], manifest.name)
    switch(state, name)
    restored = read_manifest(state, name)
    gone = [
        p
        for p, info in manifest.files.items()
        if p not in restored.files and is_our_link(Path(p), state, str(info["file"]))
    ]
    for path in gone:
        remove_file(Path(path))
    _fsync_parents(gone)
    return name
