"""``deploy plan`` / ``apply`` / ``rollback``: render, diff, check with the real servers, install.

:func:`plan` is the pure part: render into memory and compare with what is on disk.
:func:`apply` has Postfix and Dovecot check a staged copy, then installs the whole render
as a new *generation* and switches every installed file to it at once
(:mod:`mailprov.system.generations`: the installed paths are symlinks through one
``current`` link, replaced with one ``rename()``). The manifest (checksums, so that later
hand edits are noticed) is part of each generation. :func:`rollback` installs the previous
generation again. A run killed at any moment leaves the old set or the new set active,
never a mix; the next run removes what it left behind.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import signal
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailprov.errors import (
    ConfigCheckFailed,
    FileEditedByHand,
    Interrupted,
    NothingToRollBack,
    ReloadFailed,
    TargetNotWritable,
)
from mailprov.render import Layout, RenderedFile, render_bundle
from mailprov.render.contexts import COMPONENTS
from mailprov.render.opendkim import render as render_opendkim
from mailprov.render.spam import SCRIPT as SPAM_SCRIPT
from mailprov.services import arc, clientconfig, signer
from mailprov.system import dovecot, generations, opendkim, postfix, rspamd, sieve
from mailprov.system.files import ensure_dir, read_bytes, write_changed
from mailprov.system.generations import Checkpoint, Entry, sha256

if TYPE_CHECKING:
    from mailprov.settings import SiteConfig
    from mailprov.store import Store
    from mailprov.system.run import Runner

STAGED_AGE_S = 10


def _no_step(_step: str) -> None:
    """The default checkpoint: do nothing."""


@dataclass(frozen=True)
class FileChange:
    """What deploying one file would do: ``new``, ``changed`` or ``unchanged``."""

    file: RenderedFile
    status: str
    edited: bool  # changed on disk since mailprov installed it (or never installed by it)
    diff: str

    def to_json(self, *, with_diff: bool = False) -> dict[str, Any]:
        """JSON-ready data."""
        data: dict[str, Any] = {
            "path": str(self.file.path),
            "component": self.file.component,
            "status": self.status,
            "edited_by_hand": self.edited,
            "mode": f"{self.file.mode:04o}",
        }
        if with_diff:
            data["diff"] = self.diff
        return data


@dataclass(frozen=True)
class Plan:
    """The rendered files, how each differs from the target, and what would be removed."""

    layout: Layout
    state_dir: Path
    changes: list[FileChange]
    removed: list[str] = field(default_factory=list)  # installed before, no longer rendered

    @property
    def changed(self) -> list[FileChange]:
        """Files that are new or differ."""
        return [c for c in self.changes if c.status != "unchanged"]


@dataclass
class ApplyResult:
    """What ``apply`` or ``rollback`` did."""

    plan: Plan | None
    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    reloaded: list[str] = field(default_factory=list)
    generation: str | None = None

    @property
    def changed(self) -> bool:
        """True if any file was written or removed."""
        return bool(self.written or self.removed)


def state_dir_for(config: SiteConfig, target: Path | None) -> Path:
    """Where the generations and their manifests live for this target."""
    if target is not None:
        return Path(target).absolute() / ".mailprov"
    return config.resolve_path(config.deploy.state_dir)


def read_manifest(state_dir: Path) -> dict[str, str]:
    """``{path: sha256}`` of the active generation (empty before the first apply)."""
    return generations.read_manifest(state_dir).checksums()


def store_files(store: Store, config: SiteConfig, layout: Layout) -> list[RenderedFile]:
    """The files rendered from the store's domains: OpenDKIM's (when [dkim] sign is on) and
    the web server's autoconfig/autodiscover/MTA-STS files and nginx snippet."""
    out = []
    if config.dkim.sign:
        tables = render_opendkim(signer.context(store, config, layout.opendkim_dir))
        for name, text in tables.items():
            base = "opendkim.conf" if name.endswith(".conf") else name.split("-")[0]
            template = f"opendkim/{base}.j2"
            out.append(
                RenderedFile("opendkim", layout.opendkim_dir / name, template, text, 0o644, None)
            )
    for path, text in clientconfig.web_files(store, config, layout.web_dir).items():
        template = {
            "config-v1.1.xml": "clients/config-v1.1.xml.j2",
            "autodiscover.xml": "clients/autodiscover.xml.j2",
            "nginx-mailprov.conf": "clients/nginx-autoconfig.conf.j2",
        }.get(path.name, "(mta-sts policy)")
        out.append(RenderedFile("web", path, template, text, 0o644, None))
    return out


def rendered_files(
    config: SiteConfig, layout: Layout, store: Store | None = None
) -> list[RenderedFile]:
    """Everything deploy installs: the server config, plus the store's files when given."""
    files = render_bundle(config, layout)
    if store is not None:
        files += store_files(store, config, layout)
    return files


def _is_foreign_link(path: Path, state_dir: Path, file: str) -> bool:
    return path.is_symlink() and not generations.is_our_link(path, state_dir, file)


def plan(config: SiteConfig, *, target: Path | None = None, store: Store | None = None) -> Plan:
    """Render for the target and compare with the files there. Reads only; writes nothing.

    A file is edited by hand when what a reader sees at its path differs from both the
    render and the manifest's checksum (a generation file edited through its link, or our
    link replaced by a different file), or when the path is a symlink that is not ours.
    With ``store``, OpenDKIM's files and the web files are part of the plan too.

    Raises:
        ConfigInvalid: a setting cannot be rendered safely.
    """
    layout = Layout.for_target(config, target)
    state_dir = state_dir_for(config, target)
    manifest = read_manifest(state_dir)
    changes = []
    rendered = rendered_files(config, layout, store)
    for file in rendered:
        new = file.content.encode("utf-8")
        old = read_bytes(file.path)
        if old is None:
            status = "new"
        elif old == new:
            status = "unchanged"
        else:
            status = "changed"
        recorded = manifest.get(str(file.path))
        foreign = _is_foreign_link(file.path, state_dir, _entry_file(file, layout))
        edited = old is not None and old != new and (foreign or recorded != sha256(old))
        diff = "" if status == "unchanged" else _diff(file.path, old, new)
        changes.append(FileChange(file, status, edited, diff))
    active = generations.read_manifest(state_dir)
    paths = {str(f.path) for f in rendered}
    removed = [
        p
        for p, info in active.files.items()
        if active.name and p not in paths and read_bytes(Path(p)) is not None
        if generations.is_our_link(Path(p), state_dir, str(info["file"]))
    ]
    return Plan(layout, state_dir, changes, sorted(removed))


def _diff(path: Path, old: bytes | None, new: bytes) -> str:
    before = (old or b"").decode("utf-8", "replace").splitlines(keepends=True)
    after = new.decode("utf-8").splitlines(keepends=True)
    return "".join(difflib.unified_diff(before, after, f"{path} (installed)", f"{path} (rendered)"))


def render_to(config: SiteConfig, out: Path, store: Store | None = None) -> list[str]:
    """Write the files rendered for ``out`` into it (for review); returns the paths written.

    Raises:
        ConfigInvalid: a setting cannot be rendered safely (nothing is written).
        TargetNotWritable: ``out`` cannot be written.
    """
    files = rendered_files(config, Layout.for_target(config, out), store)
    return [str(p) for p in write_changed({f.path: f.content for f in files})]


# -- validation -------------------------------------------------------------------


def validate(config: SiteConfig, runner: Runner, *, full: bool, store: Store | None = None) -> None:
    """Render into a private staging folder and have Postfix, Dovecot (OpenDKIM, rspamd) check it.

    ``full`` adds ``postfix check``, which creates missing queue folders (apply only).

    Raises:
        ConfigCheckFailed: with the validators' own messages; nothing is installed.
    """
    with tempfile.TemporaryDirectory(prefix="mailprov-staging-") as tmp:
        layout = Layout.for_target(config, Path(tmp))
        for rendered in rendered_files(config, layout, store):
            rendered.path.parent.mkdir(parents=True, exist_ok=True)
            rendered.path.write_text(rendered.content, "utf-8")
            rendered.path.chmod(rendered.mode)
            # Postfix re-reads a config file modified in the last moments, sleeping 0.3 s a
            # time until it is "old enough"; staged files may safely look older.
            stamp = time.time() - STAGED_AGE_S
            os.utime(rendered.path, (stamp, stamp))
        problems = postfix.check(runner, layout.postfix_dir, full=full)
        problems += dovecot.check(runner, layout.dovecot_dir / "dovecot.conf")
        spam_rule = layout.dovecot_dir / SPAM_SCRIPT
        if spam_rule.is_file():  # Pigeonhole's compiler, with the staged Dovecot's settings
            text = spam_rule.read_text("utf-8")
            problems += [
                f"{SPAM_SCRIPT}: {p}"
                for p in sieve.check(runner, text, layout.dovecot_dir / "dovecot.conf")
            ]
        for conf in sorted(layout.opendkim_dir.glob("*.conf")):
            problems += opendkim.check(runner, conf)
        if config.rspamd.enabled:
            db_dir = str(config.resolve_path(config.rspamd.db_dir))
            problems += rspamd.check(runner, layout.rspamd_dir, db_dir)
            problems += _check_learning(runner, layout)
        if problems:
            shown = [p.replace(tmp, "<staging>") for p in problems]
            raise ConfigCheckFailed(
                f"the rendered configuration failed the servers' checks: {shown[0]}",
                hint="fix the site config; nothing was installed",
                problems=shown,
            )


def _check_learning(runner: Runner, layout: Layout) -> list[str]:
    """Pigeonhole's complaints about the IMAPSieve learning scripts, under the staged
    dovecot.conf (which allows them the pipe extension)."""
    conf = layout.dovecot_dir / "dovecot.conf"
    return [
        f"{script.name}: {problem}"
        for script in sorted((layout.dovecot_dir / "imapsieve").glob("*.sieve"))
        for problem in sieve.check(runner, script.read_text("utf-8"), conf)
    ]


def ensure_runtime_dirs(config: SiteConfig) -> list[str]:
    """Create the folders the servers need and do not make themselves; returns those created."""
    made = []
    wanted = [
        (config.postfix.queue_directory, 0o755, None),
        (config.dovecot.mail_root, 0o750, config.dovecot.vmail_user),
    ]
    for log_file in (config.postfix.maillog_file, config.dovecot.log_path):
        if log_file:
            wanted.append((str(Path(log_file).parent), 0o755, None))
    for raw, mode, owner in wanted:
        path = config.resolve_path(raw)
        if ensure_dir(path, mode=mode, owner=owner):
            made.append(str(path))
    return made


# -- installing -------------------------------------------------------------------


@contextlib.contextmanager
def _signals_raise() -> Iterator[None]:
    """Turn SIGTERM and SIGINT into Interrupted, so that a half-written generation is removed."""

    def handler(signum: int, _frame: Any) -> None:
        raise Interrupted(f"interrupted by signal {signal.Signals(signum).name}")

    saved = {}
    try:
        for sig in (signal.SIGTERM, signal.SIGINT):
            saved[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread: signals cannot be caught here
        pass
    try:
        yield
    finally:
        for sig, old in saved.items():
            signal.signal(sig, old)


def _entry_file(file: RenderedFile, layout: Layout) -> str:
    """Where a rendered file sits inside a generation: ``<component>/<path in its folder>``."""
    return f"{file.component}/{file.path.relative_to(layout.directory(file.component))}"


def _entries(planned: Plan) -> list[Entry]:
    return [
        Entry(
            c.file.path,
            _entry_file(c.file, planned.layout),
            c.file.content.encode("utf-8"),
            c.file.mode,
            c.file.group,
        )
        for c in planned.changes
    ]


def _in_place(state_dir: Path, entries: list[Entry]) -> bool:
    """True if the active generation is exactly ``entries`` and every path is our link."""
    active = generations.read_manifest(state_dir)
    expected = generations.manifest_files(entries)
    return (
        active.name is not None
        and active.files == expected
        and all(generations.is_our_link(e.path, state_dir, e.file) for e in entries)
    )


def _check_edits(changes: list[FileChange], force: bool) -> None:
    edited = [c for c in changes if c.edited]
    if edited and not force:
        raise FileEditedByHand(
            f"{edited[0].file.path} was changed by hand (or not installed by mailprov); "
            "nothing was installed",
            problems=[str(c.file.path) for c in edited],
        )


def _check_writable(paths: list[Path]) -> None:
    for directory in sorted({p.parent for p in paths}):
        probe = directory
        while not probe.exists():
            probe = probe.parent
        if not os.access(probe, os.W_OK) or (directory.exists() and not directory.is_dir()):
            raise TargetNotWritable(f"{directory} is not writable; nothing was installed")


def _install(
    state_dir: Path, entries: list[Entry], *, keep: int, on_step: Checkpoint
) -> generations.Installed:
    """Install ``entries`` as a new generation (the caller holds the lock).

    SIGTERM/SIGINT before the switch remove the half-written generation (exit 130); after
    it, the new set stays active and the signal is reported.
    """
    wanted = {str(e.path): sha256(e.data) for e in entries}
    try:
        with _signals_raise():
            return generations.install(state_dir, entries, keep=keep, on_step=on_step)
    except BaseException as exc:
        switched = read_manifest(state_dir) == wanted
        generations.remove_leftovers(state_dir, [e.path for e in entries])
        if isinstance(exc, Interrupted):
            raise Interrupted(
                f"{exc.message}; "
                + ("the new files are active" if switched else "nothing was changed")
            ) from None
        raise


def apply(
    config: SiteConfig,
    *,
    runner: Runner,
    target: Path | None = None,
    force: bool = False,
    reload: bool = False,
    on_step: Checkpoint = _no_step,
    store: Store | None = None,
) -> ApplyResult:
    """Render, check with the real servers, and install as a new generation (see the module).

    ``on_step`` is called with the name of each step as it completes (for tests).

    Raises:
        ConfigInvalid, ConfigCheckFailed, FileEditedByHand, TargetNotWritable: nothing installed.
        Interrupted: a signal arrived mid-way (the message says whether the switch happened).
        ReloadFailed: a server refused the new files; the previous generation is active again.
    """
    planned = plan(config, target=target, store=store)
    _check_edits(planned.changes, force)
    entries = _entries(planned)
    state_dir = planned.state_dir
    keep = config.deploy.keep_generations
    paths = [e.path for e in entries] + [Path(p) for p in planned.removed]
    if not planned.changed and not planned.removed and _in_place(state_dir, entries):
        with generations.lock(state_dir):  # tidy what a killed run may have left
            generations.remove_leftovers(state_dir, paths)
            generations.prune(state_dir, keep)
        _sync_arc_keys(config, store)
        return ApplyResult(planned, generation=generations.current_name(state_dir))
    _check_writable(paths)
    ensure_runtime_dirs(config)
    with generations.lock(state_dir):
        on_step("locked")
        generations.remove_leftovers(state_dir, paths)
        on_step("leftovers-removed")
        validate(config, runner, full=True, store=store)
        on_step("validated")
        for directory in sorted({p.parent for p in paths}):
            ensure_dir(directory)
        installed = _install(state_dir, entries, keep=keep, on_step=on_step)
    _sync_arc_keys(config, store)
    written = [str(c.file.path) for c in planned.changed]
    result = ApplyResult(planned, written, installed.removed, generation=installed.generation)
    if reload and result.changed:
        components = {c.file.component for c in planned.changed}
        components |= _components(planned.layout, installed.removed)
        done, error = _reload(runner, planned.layout, components)
        result.reloaded = done
        on_step("reloaded")
        if error:
            with generations.lock(state_dir):
                generations.revert(state_dir)
            _reload(runner, planned.layout, components)
            raise ReloadFailed(f"reload failed ({error}); the previous files were put back")
    return result


def _sync_arc_keys(config: SiteConfig, store: Store | None) -> None:
    """rspamd's ARC sealing keys follow the signing RSA keys (with [rspamd] arc_seal)."""
    if store is not None:
        arc.sync(store, config)


def _components(layout: Layout, paths: list[str]) -> set[str]:
    return {
        c for c in COMPONENTS if any(p.startswith(str(layout.directory(c)) + "/") for p in paths)
    }


def _reload(runner: Runner, layout: Layout, components: set[str]) -> tuple[list[str], str | None]:
    done: list[str] = []
    if "dovecot" in components:
        err = dovecot.reload(runner, layout.dovecot_dir / "dovecot.conf")
        if err:
            return done, f"dovecot: {err}"
        done.append("dovecot")
    if "postfix" in components:
        err = postfix.reload(runner, layout.postfix_dir)
        if err:
            return done, f"postfix: {err}"
        done.append("postfix")
    if "opendkim" in components:
        # A signer that is not running yet has nothing to re-read (its unit starts it).
        pids = [opendkim.pid_file_of(c) for c in sorted(layout.opendkim_dir.glob("*.conf"))]
        if any(opendkim.reload(p) for p in pids if p is not None):
            done.append("opendkim")
    if "rspamd" in components:
        # Not running yet (its unit starts it): nothing to re-read.
        pid_file = rspamd.pid_file_of(layout.rspamd_dir / "rspamd.conf")
        if pid_file is not None and rspamd.reload(pid_file):
            done.append("rspamd")
    return done, None


def rollback(
    config: SiteConfig, *, runner: Runner, target: Path | None = None, reload: bool = False
) -> ApplyResult:
    """Install the generation before the active one again (a second rollback undoes the first).

    Rolling back the first apply removes the files it installed.

    Raises:
        NothingToRollBack: no apply has run on this target yet.
    """
    state_dir = state_dir_for(config, target)
    if generations.current_name(state_dir) is None:
        raise NothingToRollBack(f"no previous configuration is kept in {state_dir}")
    with generations.lock(state_dir):
        active = generations.read_manifest(state_dir)
        entries = generations.load_entries(state_dir, active.previous) if active.previous else []
        paths = [e.path for e in entries] + [Path(p) for p in active.files]
        generations.remove_leftovers(state_dir, paths)
        written = [str(e.path) for e in entries if read_bytes(e.path) != e.data]
        installed = _install(
            state_dir, entries, keep=config.deploy.keep_generations, on_step=_no_step
        )
    result = ApplyResult(None, written, installed.removed, generation=installed.generation)
    if reload and result.changed:
        layout = Layout.for_target(config, target)
        components = _components(layout, written + installed.removed)
        result.reloaded, error = _reload(runner, layout, components)
        if error:
            raise ReloadFailed(
                f"reload after rollback failed ({error})", hint="see the server's log"
            )
    return result
