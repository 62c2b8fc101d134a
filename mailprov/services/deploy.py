"""``deploy plan`` / ``apply`` / ``rollback``: render, diff, check with the real servers, install.

:func:`plan` is the pure part: render into memory and compare with what is on
disk. :func:`apply` stages the files, has Postfix and Dovecot check the staged
copy, then installs only what changed, atomically, keeping the files it replaces
as the previous set (for :func:`rollback`) and recording checksums in a manifest
so that later hand edits are noticed. An exception or SIGTERM/SIGINT during the
install puts every file back as it was.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
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
from mailprov.system import dovecot, opendkim, postfix
from mailprov.system.install import ensure_dir, fsync_dir, install_file, remove_file

if TYPE_CHECKING:
    from mailprov.settings import SiteConfig
    from mailprov.store import Store
    from mailprov.system.run import Runner

MANIFEST = "manifest.json"
PREVIOUS = "previous"
STAGED_AGE_S = 10


def sha256(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


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
    """The rendered files and how each differs from the target."""

    layout: Layout
    state_dir: Path
    changes: list[FileChange]

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

    @property
    def changed(self) -> bool:
        """True if any file was written or removed."""
        return bool(self.written or self.removed)


def state_dir_for(config: SiteConfig, target: Path | None) -> Path:
    """Where the manifest and previous set live for this target."""
    if target is not None:
        return Path(target).absolute() / ".mailprov"
    return config.resolve_path(config.deploy.state_dir)


def read_manifest(state_dir: Path) -> dict[str, str]:
    """``{path: sha256}`` of what the last apply installed (empty before the first)."""
    try:
        data = json.loads((state_dir / MANIFEST).read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    files = data.get("files", {}) if isinstance(data, dict) else {}
    return {str(k): str(v) for k, v in files.items()}


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except IsADirectoryError:
        return b"\0(a folder)"


def store_files(store: Store, config: SiteConfig, layout: Layout) -> list[RenderedFile]:
    """The files rendered from the store's domains: OpenDKIM's (when [dkim] sign is on) and
    the web server's autoconfig/autodiscover/MTA-STS files and nginx snippet."""
    from mailprov.render.opendkim import render as render_opendkim  # noqa: PLC0415
    from mailprov.services import clientconfig, signer  # noqa: PLC0415

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


def plan(config: SiteConfig, *, target: Path | None = None, store: Store | None = None) -> Plan:
    """Render for the target and compare with the files there. Reads only; writes nothing.

    With ``store``, OpenDKIM's files and the web files are part of the plan too.

    Raises:
        ConfigInvalid: a setting cannot be rendered safely.
    """
    layout = Layout.for_target(config, target)
    state_dir = state_dir_for(config, target)
    manifest = read_manifest(state_dir)
    changes = []
    for rendered in rendered_files(config, layout, store):
        new = rendered.content.encode("utf-8")
        old = _read(rendered.path)
        if old is None:
            status = "new"
        elif old == new:
            status = "unchanged"
        else:
            status = "changed"
        recorded = manifest.get(str(rendered.path))
        edited = old is not None and old != new and (recorded is None or recorded != sha256(old))
        diff = "" if status == "unchanged" else _diff(rendered.path, old, new)
        changes.append(FileChange(rendered, status, edited, diff))
    return Plan(layout, state_dir, changes)


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
    written = []
    for rendered in files:
        data = rendered.content.encode("utf-8")
        if _read(rendered.path) == data:
            continue
        ensure_dir(rendered.path.parent)
        install_file(rendered.path, data, mode=rendered.mode, group=rendered.group)
        written.append(str(rendered.path))
    return written


# -- validation -------------------------------------------------------------------


def validate(config: SiteConfig, runner: Runner, *, full: bool, store: Store | None = None) -> None:
    """Render into a private staging folder and have Postfix, Dovecot (and OpenDKIM) check it.

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
        for conf in sorted(layout.opendkim_dir.glob("*.conf")):
            problems += opendkim.check(runner, conf)
        if problems:
            shown = [p.replace(tmp, "<staging>") for p in problems]
            raise ConfigCheckFailed(
                f"the rendered configuration failed the servers' checks: {shown[0]}",
                hint="fix the site config; nothing was installed",
                problems=shown,
            )


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
    """Turn SIGTERM and SIGINT into Interrupted, so the install can put files back."""

    def handler(signum: int, _frame: Any) -> None:
        raise Interrupted(
            f"interrupted by signal {signal.Signals(signum).name}; nothing was changed"
        )

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


@dataclass(frozen=True)
class _Desired:
    path: Path
    data: bytes | None  # None: the file must not exist
    mode: int
    group: str | None


def _install(
    desired: list[_Desired],
    state_dir: Path,
    manifest: dict[str, str],
    on_written: Callable[[Path], None] | None,
) -> tuple[list[str], list[str]]:
    """Install ``desired`` all-or-nothing; the replaced files become the previous set."""
    for directory in sorted({d.path.parent for d in desired} | {state_dir}):
        ensure_dir(directory)
    staging_prev = Path(tempfile.mkdtemp(prefix=".previous-", dir=state_dir))
    index: dict[str, str | None] = {}
    written: list[str] = []
    removed: list[str] = []
    done: list[_Desired] = []
    try:
        with _signals_raise():
            for n, item in enumerate(desired):
                old = _read(item.path)
                if old is not None and item.path.is_file():
                    copy = staging_prev / f"{n}"
                    shutil.copy2(item.path, copy)
                    index[str(item.path)] = copy.name
                else:
                    index[str(item.path)] = None
            old_manifest = state_dir / MANIFEST
            if old_manifest.is_file():
                shutil.copy2(old_manifest, staging_prev / MANIFEST)
            (staging_prev / "index.json").write_text(json.dumps(index, indent=1), "utf-8")
            for item in desired:
                done.append(item)
                if item.data is None:
                    remove_file(item.path)
                    removed.append(str(item.path))
                else:
                    install_file(item.path, item.data, mode=item.mode, group=item.group)
                    written.append(str(item.path))
                if on_written is not None:
                    on_written(item.path)
            body = json.dumps({"files": manifest}, indent=1, sort_keys=True).encode("utf-8")
            install_file(state_dir / MANIFEST, body, mode=0o600)
            for directory in {d.path.parent for d in desired}:
                fsync_dir(directory)
            _swap_previous(state_dir, staging_prev)
    except BaseException:
        _restore(done, staging_prev, index)
        shutil.rmtree(staging_prev, ignore_errors=True)
        raise
    return written, removed


def _restore(done: list[_Desired], staging_prev: Path, index: dict[str, str | None]) -> None:
    """Put back every file touched so far (signals are ignored meanwhile)."""
    with _ignoring_signals():
        for item in reversed(done):
            saved = index.get(str(item.path))
            if saved is None:
                remove_file(item.path)
            else:
                shutil.copy2(
                    staging_prev / saved, item.path.with_name(f".{item.path.name}.restore")
                )
                item.path.with_name(f".{item.path.name}.restore").replace(item.path)


@contextlib.contextmanager
def _ignoring_signals() -> Iterator[None]:
    saved = {}
    try:
        for sig in (signal.SIGTERM, signal.SIGINT):
            saved[sig] = signal.signal(sig, signal.SIG_IGN)
    except ValueError:
        pass
    try:
        yield
    finally:
        for sig, old in saved.items():
            signal.signal(sig, old)


def _swap_previous(state_dir: Path, staging_prev: Path) -> None:
    previous = state_dir / PREVIOUS
    if previous.exists():
        old = Path(tempfile.mkdtemp(prefix=".old-", dir=state_dir))
        previous.replace(old / PREVIOUS)
        staging_prev.replace(previous)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging_prev.replace(previous)


def _check_edits(changes: list[FileChange], force: bool) -> None:
    edited = [c for c in changes if c.edited]
    if edited and not force:
        raise FileEditedByHand(
            f"{edited[0].file.path} was changed by hand (or not installed by mailprov); "
            "nothing was installed",
            problems=[str(c.file.path) for c in edited],
        )


def _check_writable(plan_: Plan) -> None:
    for change in plan_.changed:
        directory = change.file.path.parent
        probe = directory
        while not probe.exists():
            probe = probe.parent
        if not os.access(probe, os.W_OK) or (directory.exists() and not directory.is_dir()):
            raise TargetNotWritable(f"{directory} is not writable; nothing was installed")


def apply(
    config: SiteConfig,
    *,
    runner: Runner,
    target: Path | None = None,
    force: bool = False,
    reload: bool = False,
    on_written: Callable[[Path], None] | None = None,
    store: Store | None = None,
) -> ApplyResult:
    """Render, check with the real servers, and install what changed (see the module docs).

    Raises:
        ConfigInvalid, ConfigCheckFailed, FileEditedByHand, TargetNotWritable: nothing installed.
        Interrupted: a signal arrived mid-way; every file was put back.
        ReloadFailed: a server refused the new files; the previous files were put back.
    """
    planned = plan(config, target=target, store=store)
    _check_edits(planned.changes, force)
    manifest = read_manifest(planned.state_dir)
    wanted = {str(c.file.path): sha256(c.file.content.encode("utf-8")) for c in planned.changes}
    if not planned.changed and all(manifest.get(k) == v for k, v in wanted.items()):
        return ApplyResult(planned)
    _check_writable(planned)
    ensure_runtime_dirs(config)
    validate(config, runner, full=True, store=store)
    desired = [
        _Desired(c.file.path, c.file.content.encode("utf-8"), c.file.mode, c.file.group)
        for c in planned.changed
    ]
    written, removed = _install(desired, planned.state_dir, {**manifest, **wanted}, on_written)
    result = ApplyResult(planned, written, removed)
    if reload and result.changed:
        components = {c.file.component for c in planned.changed}
        _reload_or_roll_back(
            config,
            runner=runner,
            layout=planned.layout,
            state_dir=planned.state_dir,
            components=components,
            result=result,
        )
    return result


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
    return done, None


def _reload_or_roll_back(
    config: SiteConfig,
    *,
    runner: Runner,
    layout: Layout,
    state_dir: Path,
    components: set[str],
    result: ApplyResult,
) -> None:
    done, error = _reload(runner, layout, components)
    result.reloaded = done
    if error:
        _rollback_files(state_dir)
        _reload(runner, layout, components)
        raise ReloadFailed(f"reload failed ({error}); the previous files were put back")


def _rollback_files(state_dir: Path) -> tuple[list[str], list[str]]:
    previous = state_dir / PREVIOUS
    try:
        index = json.loads((previous / "index.json").read_text("utf-8"))
    except (OSError, ValueError):
        raise NothingToRollBack(f"no previous configuration is kept in {state_dir}") from None
    saved_manifest = _read(previous / MANIFEST)
    old_manifest = json.loads(saved_manifest) if saved_manifest else {"files": {}}
    desired = []
    for path, saved in index.items():
        data = None if saved is None else (previous / saved).read_bytes()
        mode = 0o644 if saved is None else (previous / saved).stat().st_mode & 0o7777
        group = None
        if saved is not None and (previous / saved).stat().st_gid != 0:
            import grp  # noqa: PLC0415

            with contextlib.suppress(KeyError):
                group = grp.getgrgid((previous / saved).stat().st_gid).gr_name
        desired.append(_Desired(Path(path), data, mode, group))
    return _install(desired, state_dir, dict(old_manifest.get("files", {})), None)


def rollback(
    config: SiteConfig, *, runner: Runner, target: Path | None = None, reload: bool = False
) -> ApplyResult:
    """Put back the files the last apply replaced (a second rollback undoes the first).

    Raises:
        NothingToRollBack: no apply has run on this target yet.
    """
    state_dir = state_dir_for(config, target)
    written, removed = _rollback_files(state_dir)
    result = ApplyResult(None, written, removed)
    if reload and result.changed:
        layout = Layout.for_target(config, target)
        components = {
            c
            for c in COMPONENTS
            if any(p.startswith(str(layout.directory(c)) + "/") for p in written + removed)
        }
        result.reloaded, error = _reload(runner, layout, components)
        if error:
            raise ReloadFailed(
                f"reload after rollback failed ({error})", hint="see the server's log"
            )
    return result
