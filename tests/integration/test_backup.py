"""``mailprov backup`` / ``restore``: a verified archive, SQLite <-> PostgreSQL both ways."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli, PgSchema

PASSWORD = "Wonder-Land-1865\n"


def site_env(folder: Path) -> dict[str, str]:
    """DKIM keys and the identity pepper under ``folder`` (the restore side gets its own)."""
    return {
        "MAILPROV_PASSWORDS_SCHEME": "SHA512-CRYPT",
        "MAILPROV_DKIM_KEY_DIR": str(folder / "dkim"),
        "MAILPROV_DKIM_SIGNER_USER": "root",
        "MAILPROV_IDENTITY_PEPPER_FILE": str(folder / "pepper"),
    }


def populate(cli: Cli, store_url: str) -> None:
    """Accounts through the CLI, a DKIM key, the pepper, and rows in the owner's (0003) tables."""
    from sqlalchemy import insert

    from mailprov.store import open_store
    from mailprov.store.schema import (
        app_passwords,
        login_failures,
        owner_filters,
        owner_totp,
        recovery_contacts,
        trusted_cas,
    )
    from mailprov.system.secrets import load_pepper

    assert 0 == cli("domain", "add", "bücher.test").exit_code
    for address in ("alice@example.test", "ива@bücher.test".replace("ива", "iva")):
        result = cli("mailbox", "add", address, "--name", "Ива", "--password-stdin", input=PASSWORD)
        assert 0 == result.exit_code, result.output
    assert 0 == cli("alias", "add", "@example.test", "alice@example.test").exit_code
    assert 0 == cli("dkim", "keygen", "example.test", "--selector", "s1").exit_code
    load_pepper(Path(cli.env["MAILPROV_IDENTITY_PEPPER_FILE"]))
    store = open_store(store_url)
    try:
        with store.begin() as conn:
            conn.execute(
                insert(owner_totp).values(
                    address="alice@example.test", secret="JBSWY3DP", created_at=1
                )
            )
            conn.execute(
                insert(app_passwords).values(
                    address="alice@example.test", label="phone", password_hash="{X}y", created_at=2
                )
            )
            conn.execute(
                insert(recovery_contacts).values(
                    address="alice@example.test",
                    contact="a@remote.test",
                    kind="email",
                    created_at=3,
                )
            )
            conn.execute(
                insert(owner_filters).values(address="alice@example.test", spec="{}", updated_at=4)
            )
            conn.execute(insert(login_failures).values(key="client:127.0.0.1", window_start=5))
            conn.execute(
                insert(trusted_cas).values(
                    fingerprint="ab" * 32, subject="CN=Test", pem="-----", created_at=6
                )
            )
    finally:
        store.close()


def table_rows(store_url: str) -> dict[str, list[dict[str, Any]]]:
    """Every table's rows, ordered by primary key (the audit log's restore record left out)."""
    from sqlalchemy import select

    from mailprov.store import open_store
    from mailprov.store.schema import metadata

    store = open_store(store_url)
    try:
        with store.read() as conn:
            out = {
                t.name: [
                    dict(r._mapping)
                    for r in conn.execute(select(t).order_by(*t.primary_key.columns))
                ]
                for t in metadata.sorted_tables
            }
    finally:
        store.close()
    out["audit_log"] = [r for r in out["audit_log"] if r["action"] != "store.restore"]
    return out


@pytest.fixture(name="source")
def fixture_source(run: Cli, tmp_path: Path) -> Cli:
    """The run fixture's site with accounts, a DKIM key, the pepper and the owner's rows."""
    run.env.update(site_env(tmp_path / "source"))
    populate(run, run.store_url or "")
    return run


def fresh_url(kind: str, tmp_path: Path, pg: PgSchema | None) -> str:
    """A store URL where nothing exists yet (no SQLite file, or an empty PostgreSQL schema)."""
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'restored.sqlite'}"
    assert pg is not None
    return pg.fresh()


class TestRoundTrip:
    """Backup on one backend, restore on either: every table, the chain, the key files."""

    @pytest.mark.parametrize(
        "target", ["sqlite", pytest.param("postgresql", marks=pytest.mark.requires_postgres)]
    )
    def test_restore_equals_the_source(
        self, source: Cli, tmp_path: Path, target: str, request: pytest.FixtureRequest
    ) -> None:
        """Each table holds the same rows after restore; audit verify passes; keys are back."""
        pg = request.getfixturevalue("pg") if target == "postgresql" else None
        out = tmp_path / "site.backup"
        status, doc = source.json("backup", "--out", str(out))
        assert 0 == status, doc
        assert 0o600 == out.stat().st_mode & 0o777
        assert "dkim/example.test/s1.private" in doc["files"]
        assert "identity/pepper" in doc["files"]
        assert doc["not_included"][0].startswith("Maildirs")
        assert 2 == doc["tables"]["mailboxes"]

        url = fresh_url(target, tmp_path, pg)
        restored = Cli(tmp_path / "state2", store_url=url, env=site_env(tmp_path / "target"))
        status, checked = restored.json("restore", str(out), "--check")
        assert (0, True) == (status, checked["check"]), checked
        status, done = restored.json("restore", str(out))
        assert 0 == status, done
        assert table_rows(source.store_url or "") == table_rows(url)
        status, chain = restored.json("audit", "verify")
        assert 0 == status, chain
        key = tmp_path / "target" / "dkim" / "example.test" / "s1.private"
        assert key.read_bytes() == (tmp_path / "source/dkim/example.test/s1.private").read_bytes()
        assert 0o600 == key.stat().st_mode & 0o777
        assert (tmp_path / "target/pepper").read_bytes() == (
            tmp_path / "source/pepper"
        ).read_bytes()
        # The restored store takes new rows: ids continue after the restored ones.
        result = restored("mailbox", "add", "new@example.test", "--password-stdin", input=PASSWORD)
        assert 0 == result.exit_code, result.output
        assert 0 == restored("alias", "add", "info@example.test", "new@example.test").exit_code
        status, chain = restored.json("audit", "verify")
        assert 0 == status, chain

    @pytest.mark.requires_postgres
    def test_postgresql_to_sqlite(
        self, pg: PgSchema, tmp_path: Path, sqlite_template: Path
    ) -> None:
        """A PostgreSQL store's backup restores into SQLite with the same rows."""
        from mailprov.store.migrate import upgrade

        url = pg.fresh()
        upgrade(url)
        source = Cli(tmp_path / "state1", store_url=url, env=site_env(tmp_path / "source"))
        assert 0 == source("domain", "add", "example.test").exit_code
        populate(source, url)
        out = tmp_path / "pg.backup"
        assert 0 == source("backup", "--out", str(out)).exit_code
        target = f"sqlite:///{tmp_path / 'from-pg.sqlite'}"
        restored = Cli(tmp_path / "state2", store_url=target, env=site_env(tmp_path / "target"))
        status, done = restored.json("restore", str(out))
        assert (0, "postgresql") == (status, done["source_backend"]), done
        assert table_rows(url) == table_rows(target)
        assert 0 == restored("audit", "verify").exit_code


class TestRefusals:
    """A damaged backup or a store in the way: an error, and nothing restored."""

    def test_truncated_and_tampered(self, source: Cli, tmp_path: Path) -> None:
        """Cut short or with a changed member: backup-invalid (93), the target left untouched."""
        out = tmp_path / "site.backup"
        assert 0 == source("backup", "--out", str(out)).exit_code
        data = out.read_bytes()
        cut = tmp_path / "cut.backup"
        cut.write_bytes(data[: len(data) // 2])
        url = f"sqlite:///{tmp_path / 'target.sqlite'}"
        target = Cli(tmp_path / "state2", store_url=url, env=site_env(tmp_path / "target"))
        status, doc = target.json("restore", str(cut))
        assert (93, "backup-invalid") == (status, doc["error"]["code"])
        # A member changed but the tar still valid: the manifest's checksum catches it.
        members = {}
        with tarfile.open(out, "r:gz") as tar:
            for info in tar:
                handle = tar.extractfile(info)
                members[info.name] = handle.read() if handle else b""
        members["store/mailboxes.jsonl"] = members["store/mailboxes.jsonl"].replace(
            b"alice", b"mallory"
        )
        tampered = tmp_path / "tampered.backup"
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w:gz") as tar:
            for name, body in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(body)
                tar.addfile(info, io.BytesIO(body))
        tampered.write_bytes(raw.getvalue())
        status, doc = target.json("restore", str(tampered))
        assert 93 == status
        assert "store/mailboxes.jsonl: checksum mismatch" in doc["error"]["problems"]
        assert not (tmp_path / "target.sqlite").exists()
        assert not (tmp_path / "target" / "dkim").exists()

    def test_non_empty_store_needs_force(self, source: Cli, tmp_path: Path) -> None:
        """Restoring over data is refused (94) unless --force, which replaces it."""
        out = tmp_path / "site.backup"
        assert 0 == source("backup", "--out", str(out)).exit_code
        assert (
            0
            == source(
                "mailbox", "add", "later@example.test", "--password-stdin", input=PASSWORD
            ).exit_code
        )
        status, doc = source.json("restore", str(out))
        assert (94, "restore-refused") == (status, doc["error"]["code"])
        assert "later@example.test" in source("mailbox", "list").stdout
        status, doc = source.json("restore", str(out), "--force")
        assert 0 == status, doc
        assert doc["replaced"]["mailboxes"] == 3
        assert "later@example.test" not in source("mailbox", "list").stdout
        assert 0 == source("audit", "verify").exit_code

    def test_differing_key_file_needs_force(self, source: Cli, tmp_path: Path) -> None:
        """A DKIM key at the target path with other content is refused, not overwritten."""
        out = tmp_path / "site.backup"
        assert 0 == source("backup", "--out", str(out)).exit_code
        url = f"sqlite:///{tmp_path / 'target.sqlite'}"
        target = Cli(tmp_path / "state2", store_url=url, env=site_env(tmp_path / "target"))
        key = tmp_path / "target/dkim/example.test/s1.private"
        key.parent.mkdir(parents=True)
        key.write_bytes(b"another key")
        key.chmod(0o600)
        status, doc = target.json("restore", str(out))
        assert 94 == status
        assert [str(key)] == doc["error"]["problems"]
        assert b"another key" == key.read_bytes()
        status, doc = target.json("restore", str(out), "--force")
        assert 0 == status, doc
        assert b"another key" != key.read_bytes()

    def test_newer_schema_is_refused(self, source: Cli, tmp_path: Path) -> None:
        """A backup from a newer schema: backup-too-new (95)."""
        from mailprov.rules import archive

        out = tmp_path / "site.backup"
        assert 0 == source("backup", "--out", str(out)).exit_code
        opened = archive.unpack(out.read_bytes())
        meta = {k: v for k, v in opened.manifest.items() if k not in ("format", "version", "files")}
        newer = tmp_path / "newer.backup"
        newer.write_bytes(archive.pack(opened.files, {**meta, "schema": "9999"}, mtime=0))
        url = f"sqlite:///{tmp_path / 'target.sqlite'}"
        target = Cli(tmp_path / "state2", store_url=url, env=site_env(tmp_path / "target"))
        status, doc = target.json("restore", str(newer))
        assert (95, "backup-too-new") == (status, doc["error"]["code"])
        older = tmp_path / "older.backup"
        older.write_bytes(archive.pack(opened.files, {**meta, "schema": "0002"}, mtime=0))
        status, doc = target.json("restore", str(older))
        assert (94, "restore-refused") == (status, doc["error"]["code"])
        assert "older" in doc["error"]["message"]
        assert not (tmp_path / "target.sqlite").exists()

    def test_backup_never_overwrites(self, source: Cli, tmp_path: Path) -> None:
        """--out names a new file: an existing one is file-exists (29), unchanged."""
        out = tmp_path / "taken"
        out.write_text("keep")
        assert 29 == source("backup", "--out", str(out)).exit_code
        assert "keep" == out.read_text()


class TestEncryption:
    """--passphrase-stdin: AES-256-GCM under a scrypt key."""

    def test_encrypted_round_trip(self, source: Cli, tmp_path: Path) -> None:
        """No plaintext in the file; a wrong passphrase is refused; the right one restores."""
        out = tmp_path / "site.backup"
        status, doc = source.json(
            "backup", "--out", str(out), "--passphrase-stdin", input="correct horse\n"
        )
        assert (0, True) == (status, doc["encrypted"])
        data = out.read_bytes()
        assert b"alice@example.test" not in data and b"manifest" not in data
        url = f"sqlite:///{tmp_path / 'target.sqlite'}"
        target = Cli(tmp_path / "state2", store_url=url, env=site_env(tmp_path / "target"))
        status, doc = target.json("restore", str(out))
        assert 93 == status and "no passphrase" in doc["error"]["message"]
        status, doc = target.json("restore", str(out), "--passphrase-stdin", input="wrong\n")
        assert 93 == status and "passphrase is wrong" in doc["error"]["message"]
        flipped = tmp_path / "flipped.backup"
        flipped.write_bytes(data[:-10] + bytes([data[-10] ^ 1]) + data[-9:])
        status, doc = target.json(
            "restore", str(flipped), "--passphrase-stdin", input="correct horse\n"
        )
        assert 93 == status
        status, doc = target.json(
            "restore", str(out), "--passphrase-stdin", input="correct horse\n"
        )
        assert 0 == status, doc
        assert "alice@example.test" in json.dumps(target.json("mailbox", "list")[1])


def test_site_config_is_kept_and_written_only_when_asked(
    tmp_path: Path, sqlite_template: Path
) -> None:
    """The site config goes into the backup; restore writes it only to --site-config-out (0600)."""
    import shutil

    source_db = tmp_path / "source.sqlite"
    shutil.copyfile(sqlite_template, source_db)
    config = tmp_path / "mailprov.toml"
    config.write_text(f'# the site\n[store]\nurl = "sqlite:///{source_db}"\n')
    source = Cli(tmp_path / "state1", config=config, env=site_env(tmp_path / "source"))
    assert 0 == source("domain", "add", "example.test").exit_code
    out = tmp_path / "site.backup"
    status, doc = source.json("backup", "--out", str(out))
    assert 0 == status, doc
    assert "site/mailprov.toml" in doc["files"]
    target = Cli(
        tmp_path / "state2",
        store_url=f"sqlite:///{tmp_path / 'target.sqlite'}",
        env=site_env(tmp_path / "target"),
    )
    status, doc = target.json("restore", str(out))
    assert (0, ["site/mailprov.toml"]) == (status, doc["kept_in_backup"])
    written = tmp_path / "restored.toml"
    status, doc = target.json("restore", str(out), "--force", "--site-config-out", str(written))
    assert 0 == status, doc
    assert config.read_bytes() == written.read_bytes()
    assert 0o600 == written.stat().st_mode & 0o777
