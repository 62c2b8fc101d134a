"""The one home of secret files (system/secrets.py) and of self-signed certificates (system/tls.py)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from mailprov.errors import ConfigInvalid, DkimKeyUnsafe, DkimKeyUnusable, FileExists
from mailprov.settings import NotifySection
from mailprov.system import notify
from mailprov.system.secrets import (
    DKIM_KEY,
    SecretKind,
    read_secret,
    read_secret_text,
    replace_secret,
    write_secret,
)
from mailprov.system.tls import self_signed


def test_write_secret_is_0600_and_never_overwrites(tmp_path: Path) -> None:
    """A secret is created 0600 and a second write to the same path is refused, keeping the first."""
    path = tmp_path / "k"
    write_secret(path, b"one")
    assert 0o600 == stat.S_IMODE(path.stat().st_mode)
    with pytest.raises(FileExists):
        write_secret(path, b"two")
    assert b"one" == path.read_bytes()


def test_replace_secret_leaves_no_temp_file(tmp_path: Path) -> None:
    """replace_secret swaps the content in one rename and leaves only the file, 0600."""
    path = tmp_path / "k"
    write_secret(path, b"one")
    replace_secret(path, b"two")
    assert b"two" == path.read_bytes()
    assert ["k"] == [p.name for p in tmp_path.iterdir()]
    assert 0o600 == stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620])
def test_reader_refuses_a_shared_file(tmp_path: Path, mode: int) -> None:
    """Group or others having any access makes the read fail with the kind's unsafe error."""
    path = tmp_path / "k"
    path.write_bytes(b"x")
    path.chmod(mode)
    with pytest.raises(DkimKeyUnsafe, match=f"{mode:04o}"):
        read_secret(path, DKIM_KEY)


def test_reader_refuses_symlinks_and_folders(tmp_path: Path) -> None:
    """A symlink is not followed and a folder is not a secret file: both are unusable."""
    real = tmp_path / "real"
    write_secret(real, b"x")
    (tmp_path / "link").symlink_to(real)
    with pytest.raises(DkimKeyUnusable):
        read_secret(tmp_path / "link", DKIM_KEY)
    with pytest.raises(DkimKeyUnusable, match="not a regular file"):
        read_secret(tmp_path, DKIM_KEY)


def test_password_file_first_line(tmp_path: Path) -> None:
    """A password file gives its first line, without the line break."""
    path = tmp_path / "pw"
    write_secret(path, b"s3cret-Pass\nignored\n")
    assert "s3cret-Pass" == read_secret_text(path, SecretKind("x.password_file"))


def test_notify_password_file_must_be_private(tmp_path: Path) -> None:
    """notify.password_file readable by others is refused, naming the setting and the fix."""
    path = tmp_path / "pw"
    path.write_text("pw\n")
    path.chmod(0o644)
    settings = NotifySection(smarthost="127.0.0.1", username="u", password_file=str(path))
    with pytest.raises(ConfigInvalid, match=r"notify\.password_file") as info:
        notify._smtp_password(settings, None)
    assert "chmod 600" in (info.value.hint or "")


def test_self_signed_keep_existing_and_replace(tmp_path: Path) -> None:
    """The one certificate maker refuses to overwrite a key, keeps it on request, renews on replace."""
    first = self_signed("mail.example.test", tmp_path, ips=["127.0.0.1"], now=1_800_000_000)
    key = first.key_file.read_bytes()
    assert first.created
    assert 0o600 == stat.S_IMODE(first.key_file.stat().st_mode)
    with pytest.raises(FileExists):
        self_signed("mail.example.test", tmp_path, ips=[], now=1_800_000_000)
    kept = self_signed("mail.example.test", tmp_path, ips=[], now=1_800_000_000, keep_existing=True)
    assert not kept.created
    assert key == kept.key_file.read_bytes()
    renewed = self_signed("mail.example.test", tmp_path, ips=[], now=1_800_000_000, replace=True)
    assert key != renewed.key_file.read_bytes()
    assert {"cert.pem", "key.pem"} == {p.name for p in tmp_path.iterdir()}
