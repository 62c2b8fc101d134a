"""deploy apply killed with SIGKILL between its steps and at random moments, as a real process.

Two renders of one site, set "a" and set "b" (b: another store with a second domain, so it
adds web files and changes main.cf, the maps and Dovecot's SQL file), are computed once. The
tests move the target between them with ``python -m mailprov deploy apply --target DIR``,
killed either by the test hook (``MAILPROV_TEST_KILL_AT``, named after each step an
in-process apply reported) or from outside after a random delay. After every kill the
target must show exactly one whole set, its manifest must match, and the next apply must
complete and leave no temporary file, no half generation and at most keep_generations.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailprov.cli.app import cli
from mailprov.render import Layout
from mailprov.services.deploy import apply, rendered_files
from mailprov.settings import load_settings
from mailprov.store import open_store
from mailprov.system import generations
from mailprov.system.run import SubprocessRunner
from tests.conftest import pg_base_url
from tests.integration.stack import create_pg_database, drop_pg_database, render_site

pytestmark = [pytest.mark.requires_postfix, pytest.mark.requires_dovecot]

KEEP = 3  # a small [deploy] keep_generations, so that pruning happens during the runs
SEED = 20261130  # random delays, reproducible
#: Steps after the switch (every link is made before it here: no path holds a plain file).
AFTER_SWITCH = ("switched", "stale-removed", "pruned")


@dataclass
class Rig:
    """A rendered site whose target is moved between two known sets by killed applies."""

    root: Path
    config_file: Path
    target: Path
    envs: dict[str, dict[str, str]]
    renders: dict[str, dict[str, bytes]] = field(default_factory=dict)
    steps: dict[str, list[str]] = field(default_factory=dict)  # "ab": steps of a -> b
    install_s: float = 0.05
    active: str = "a"
    seen: Counter[str] = field(default_factory=Counter)

    @property
    def state(self) -> Path:
        """The target's state folder."""
        return self.target / ".mailprov"

    def env(self, which: str, **extra: str) -> dict[str, str]:
        """The process environment of an apply of set ``which``."""
        return {
            **os.environ,
            "MAILPROV_CONFIG": str(self.config_file),
            "XDG_STATE_HOME": str(self.root / "xdg"),
            "MAILPROV_DEPLOY_KEEP_GENERATIONS": str(KEEP),
            # Compiled bytecode shared by the runs: each one starts in a second, not three.
            "PYTHONDONTWRITEBYTECODE": "",
            "PYTHONPYCACHEPREFIX": str(self.root / "pyc"),
            **self.envs[which],
            **extra,
        }

    def settings_env(self, which: str) -> dict[str, str]:
        """The MAILPROV_* variables of set ``which`` (for in-process calls)."""
        return {k: v for k, v in self.env(which).items() if k.startswith("MAILPROV_")}

    def render(self, which: str) -> dict[str, bytes]:
        """``{path: bytes}`` of set ``which``, rendered in-process."""
        settings = load_settings(config_file=self.config_file, env=self.settings_env(which))
        store = open_store(settings.store.url)
        try:
            files = rendered_files(settings, Layout.for_target(settings, self.target), store)
        finally:
            store.close()
        return {str(f.path): f.content.encode("utf-8") for f in files}

    def apply_recording(self, which: str) -> list[tuple[str, float]]:
        """Apply set ``which`` in-process; the steps it reported, with their times."""
        settings = load_settings(config_file=self.config_file, env=self.settings_env(which))
        store = open_store(settings.store.url)
        steps: list[tuple[str, float]] = []
        try:
            apply(
                settings,
                runner=SubprocessRunner(),
                target=self.target,
                store=store,
                on_step=lambda s: steps.append((s, time.monotonic())),
            )
        finally:
            store.close()
        self.active = which
        return steps

    def start(self, which: str, **extra: str) -> subprocess.Popen[bytes]:
        """``python -m mailprov deploy apply --target DIR`` for set ``which``, as a process."""
        argv = [sys.executable, "-m", "mailprov", "deploy", "apply", "--target", str(self.target)]
        return subprocess.Popen(
            argv,
            env=self.env(which, **extra),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def visible(self) -> str:
        """Which set a reader sees ("a" or "b"); fails on a mix, a plain file or a bad manifest."""
        paths = sorted({*self.renders["a"], *self.renders["b"]})
        seen = {p: _read(Path(p)) for p in paths}
        matches = [
            w for w, files in self.renders.items() if all(seen[p] == files.get(p) for p in paths)
        ]
        mixed = {p: [w for w, f in self.renders.items() if f.get(p) == seen[p]] for p in paths}
        assert len(matches) == 1, f"a mix of sets: {mixed}"
        which = matches[0]
        for path in paths:
            assert not Path(path).exists() or Path(path).is_symlink(), f"{path} is a plain file"
        wanted = {p: hashlib.sha256(d).hexdigest() for p, d in self.renders[which].items()}
        assert wanted == generations.read_manifest(self.state).checksums()
        return which

    def next_apply(self, which: str) -> None:
        """The next apply (in-process CLI) completes, shows set ``which``, and leaves it tidy."""
        result = CliRunner().invoke(
            cli, ["deploy", "apply", "--target", str(self.target)], env=self.env(which)
        )
        assert result.exit_code == 0, result.output
        assert which == self.visible()
        self.active = which
        leftovers = [
            str(Path(d) / n)
            for d, dirs, files in os.walk(self.target)
            for n in dirs + files
            if n.endswith(".tmp")
        ]
        assert leftovers == []
        gens = sorted(p.name for p in (self.state / "generations").iterdir())
        assert all(name.isdigit() for name in gens)
        assert 1 <= len(gens) <= KEEP
        assert generations.current_name(self.state) == gens[-1]
        for path in set(self.renders["a"]) ^ set(self.renders["b"]):
            assert os.path.lexists(path) == (path in self.renders[which]), path


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def kill_points(steps: list[str]) -> list[str]:
    """Each step kind once, and the first and last of the repeated ones (file:, link:)."""
    out: list[str] = []
    for _kind, group in itertools.groupby(steps, key=lambda s: s.split(":")[0]):
        items = list(group)
        out += [items[0]] if len(items) == 1 else [items[0], items[-1]]
    return out


def make_rig(
    root: Path,
    store_url: str,
    envs: dict[str, dict[str, str]],
    prepare: Callable[[Rig], None] | None = None,
    *,
    learn: bool = True,
) -> Rig:
    """Render the site (set a is applied by the harness), learn each direction's steps."""
    stack = render_site(root, store_url, name="kl")
    rig = Rig(root, stack.config_file, stack.target, envs)
    if prepare is not None:
        prepare(rig)
    rig.renders = {w: rig.render(w) for w in ("a", "b")}
    if not learn:
        return rig
    ab = rig.apply_recording("b")
    rig.steps["ab"] = [s for s, _ in ab]
    rig.steps["ba"] = [s for s, _ in rig.apply_recording("a")]
    times = dict(ab)
    rig.install_s = times["pruned"] - times["validated"]
    assert rig.visible() == "a"
    return rig


def kill_at_step(rig: Rig, new: str, step: str, *, recover_to: str) -> None:
    """Kill an apply of set ``new`` after ``step``: the old set shows before the switch and the
    new set from it on; then the next apply (of set ``recover_to``) completes."""
    old = rig.active
    proc = rig.start(new, MAILPROV_TEST_KILL_AT=step)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, (old, new, step, err.decode())
    expected = new if step in AFTER_SWITCH else old
    assert expected == rig.visible(), step
    rig.seen[expected] += 1
    rig.next_apply(recover_to)


def schedule(rig: Rig) -> list[tuple[str, str, bool]]:
    """(new set, step, whether the next apply installs the new set) for every kill point.

    Validation dominates the cost, so after most kills before the switch the next apply is
    of the set still active (it only tidies up); for two points per direction it is of the
    killed run's set (it validates again, and must cope with the half-written leftovers).
    """
    out: list[tuple[str, str, bool]] = []
    last = {d: [s for s in rig.steps[d] if s.startswith(("file:", "link:"))][-1] for d in rig.steps}
    full = {"ab": ["generation-complete", last["ab"]], "ba": [last["ba"], "generation-synced"]}
    assert last["ab"].startswith("link:")
    post: dict[str, list[tuple[str, str, bool]]] = {}
    for direction in ("ab", "ba"):
        points = kill_points(rig.steps[direction])
        cut = points.index("switched")
        new = direction[1]
        out += [(new, s, False) for s in points[:cut] if s not in full[direction]]
        out.append((new, full[direction][0], True))
        assert tuple(points[cut:]) == AFTER_SWITCH
        post[direction] = [(new, s, True) for s in points[cut:]]
    out += [("b", full["ab"][1], True), ("a", full["ba"][1], True)]
    return out + [p for pair in zip(post["ab"], post["ba"], strict=True) for p in pair]


def kill_after_delay(rig: Rig, new: str, rng: random.Random) -> None:
    """Kill an apply of set ``new`` from outside, a random moment after it starts installing."""
    proc = rig.start(new)
    gens = rig.state / "generations"
    deadline = time.monotonic() + 60
    while proc.poll() is None and not any(p.name.endswith(".tmp") for p in gens.iterdir()):
        assert time.monotonic() < deadline
        time.sleep(0.0005)
    # Within the install as measured: under load an install may still outrun the kill.
    time.sleep(rng.uniform(0, rig.install_s))
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode in (0, -signal.SIGKILL), err.decode()
    seen = rig.visible()
    rig.seen[
        f"{'killed' if proc.returncode else 'finished'}:{'new' if seen == new else 'old'}"
    ] += 1
    rig.next_apply(new)


@pytest.fixture(scope="module", name="sqlite_rig")
def fixture_sqlite_rig(tmp_path_factory: pytest.TempPathFactory) -> Rig:
    """Set a: the site's store; set b: a copy of it with a second domain, and a size limit."""
    tmp_path = tmp_path_factory.mktemp("kill")
    url_b = f"sqlite:///{tmp_path}/b.sqlite"
    envs = {
        "a": {},
        "b": {"MAILPROV_STORE_URL": url_b, "MAILPROV_POSTFIX_MESSAGE_SIZE_LIMIT": "20971520"},
    }

    def second_store(rig: Rig) -> None:
        shutil.copyfile(tmp_path / "a.sqlite", tmp_path / "b.sqlite")
        added = CliRunner().invoke(
            cli, ["--store", url_b, "domain", "add", "second.test"], env=rig.env("b")
        )
        assert added.exit_code == 0, added.output

    root = tmp_path / "site"
    root.mkdir()
    return make_rig(root, f"sqlite:///{tmp_path}/a.sqlite", envs, second_store)


def test_sigkill_between_every_two_steps_leaves_one_whole_set(sqlite_rig: Rig) -> None:
    """SIGKILL after each step (SQLite): old set before the switch, new set from it on."""
    rig = sqlite_rig
    rig.seen.clear()
    assert set(rig.renders["b"]) - set(rig.renders["a"])  # b adds files: links are exercised
    points = schedule(rig)
    assert {"validated", "generation-complete", "switched", "pruned"} <= {s for _, s, _ in points}
    flips = 0
    for new, step, to_new in points:
        if rig.active == new:  # move to the other set first
            rig.next_apply("a" if new == "b" else "b")
            flips += 1
        kill_at_step(rig, new, step, recover_to=new if to_new else rig.active)
    print(f"\nkill points: {len(points)}; sets seen: {dict(rig.seen)}; flips: {flips}")
    assert rig.seen["a"] + rig.seen["b"] == len(points)


def test_sigkill_at_random_moments_leaves_one_whole_set(sqlite_rig: Rig) -> None:
    """External SIGKILLs at random moments of the install (SQLite) never leave a mix."""
    rig = sqlite_rig
    rig.seen.clear()
    rng = random.Random(SEED)
    for _ in range(6):
        kill_after_delay(rig, "a" if rig.active == "b" else "b", rng)
    print(f"\nrandom kills: {dict(rig.seen)}")
    assert sum(rig.seen.values()) == 6
    assert sum(n for k, n in rig.seen.items() if k.startswith("killed")) >= 3


@pytest.mark.requires_postgres
def test_sigkill_on_postgresql_store(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """The same on a PostgreSQL store, at fewer points: one whole set, next apply completes."""
    request.getfixturevalue("pg")  # skips (or fails under CI) when PostgreSQL is down
    url = create_pg_database(pg_base_url())
    try:
        root = tmp_path / "site"
        root.mkdir()
        sets = {"a": {}, "b": {"MAILPROV_POSTFIX_MESSAGE_SIZE_LIMIT": "20971520"}}
        rig = make_rig(root, url, sets, learn=False)
        kill_at_step(rig, "b", "validated", recover_to="a")
        kill_at_step(rig, "b", "generation-complete", recover_to="b")
        kill_at_step(rig, "a", "switched", recover_to="a")
        kill_after_delay(rig, "a" if rig.active == "b" else "b", random.Random(SEED))
        assert sum(rig.seen.values()) == 4
    finally:
        drop_pg_database(pg_base_url(), url)
