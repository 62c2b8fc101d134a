"""system/generations: the order of fsyncs and renames (power loss), adoption, pruning."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from mailprov.errors import ConfigInvalid
from mailprov.settings import load_settings
from mailprov.system import generations
from mailprov.system.generations import Entry


def entries(root: Path, text: str, *names: str) -> list[Entry]:
    """One entry per name under root/postfix, each holding ``text``."""
    return [Entry(root / "postfix" / n, f"postfix/{n}", text.encode(), 0o644, None) for n in names]


def record(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Record every fsync (by path) and rename/replace (by destination), then do it."""
    events: list[tuple[str, str]] = []
    real_fsync, real_rename, real_replace = os.fsync, os.rename, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def rename(src: Any, dst: Any) -> None:
        events.append(("rename", str(dst)))
        real_rename(src, dst)

    def replace(src: Any, dst: Any) -> None:
        events.append(("rename", str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(os, "replace", replace)
    return events


def test_everything_is_flushed_before_the_switch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files, generation folders, links and generations/ are fsynced before 'current' is
    renamed, and the state folder right after, so a power loss shows the old or the new set."""
    state = tmp_path / "state"
    (tmp_path / "postfix").mkdir()
    events = record(monkeypatch)
    with generations.lock(state):
        generations.install(state, entries(tmp_path, "new\n", "main.cf", "master.cf"), keep=5)
    gen = state / "generations" / "0001"

    def at(kind: str, path: Path | str) -> int:
        return events.index((kind, str(path)))

    switch = at("rename", state / "current")
    complete = at("rename", gen)
    tmp = gen.with_name(".0001.tmp")
    for final in (
        tmp / "postfix" / "main.cf",
        tmp / "postfix" / "master.cf",
        tmp / "manifest.json",
    ):
        flushed = [
            i
            for i, (kind, path) in enumerate(events)
            if kind == "fsync" and path.startswith(f"{final.parent}/.{final.name}.")
        ]
        assert flushed, final
        assert flushed[0] < at("rename", final) < complete
    assert at("fsync", tmp / "postfix") < complete
    assert at("fsync", tmp) < complete
    assert complete < at("fsync", state / "generations") < switch
    assert at("rename", tmp_path / "postfix" / "main.cf") < at("fsync", tmp_path / "postfix")
    assert at("fsync", tmp_path / "postfix") < switch
    assert switch < events.index(("fsync", str(state)), switch)


def test_foreign_files_are_adopted_first_and_rollback_target(tmp_path: Path) -> None:
    """Plain files at the paths are kept as an 'adopted' generation, the previous of the new one."""
    state = tmp_path / "state"
    (tmp_path / "postfix").mkdir()
    (tmp_path / "postfix" / "main.cf").write_text("hand made\n")
    with generations.lock(state):
        done = generations.install(state, entries(tmp_path, "new\n", "main.cf"), keep=5)
    assert (done.adopted, done.generation) == ("0001", "0002")
    assert (tmp_path / "postfix" / "main.cf").is_symlink()
    assert (tmp_path / "postfix" / "main.cf").read_text() == "new\n"
    assert generations.read_manifest(state).previous == "0001"
    [old] = generations.load_entries(state, "0001")
    assert old.data == b"hand made\n"


def test_old_generations_are_pruned_and_leftovers_removed(tmp_path: Path) -> None:
    """At most keep generations remain; a half-written one and a stray temp link are removed."""
    state = tmp_path / "state"
    (tmp_path / "postfix").mkdir()
    with generations.lock(state):
        for n in range(5):
            generations.install(state, entries(tmp_path, f"v{n}\n", "main.cf"), keep=3)
        (state / "generations" / ".0009.tmp").mkdir()
        (tmp_path / "postfix" / ".main.cf.abcd1234.tmp").symlink_to("nowhere")
        removed = generations.remove_leftovers(state, [tmp_path / "postfix" / "main.cf"])
    assert sorted(Path(p).name for p in removed) == [".0009.tmp", ".main.cf.abcd1234.tmp"]
    assert generations.names(state) == ["0003", "0004", "0005"]
    assert (tmp_path / "postfix" / "main.cf").read_text() == "v4\n"


def test_keep_generations_must_allow_a_rollback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """[deploy] keep_generations below 2 is refused, naming the setting."""
    monkeypatch.chdir(tmp_path)
    env = {"MAILPROV_CONFIG": "", "MAILPROV_DEPLOY_KEEP_GENERATIONS": "1"}
    with pytest.raises(ConfigInvalid, match=r"deploy\.keep_generations"):
        load_settings(env=env)
    env["MAILPROV_DEPLOY_KEEP_GENERATIONS"] = "2"
    assert load_settings(env=env).deploy.keep_generations == 2
