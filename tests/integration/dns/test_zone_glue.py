"""`dns records --standalone` makes a zone a name server loads, or refuses (missing glue), by kzonecheck."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Cli, require_or_skip

NO_ADDRESSES = {"MAILPROV_DNS_IPV4": "", "MAILPROV_DNS_IPV6": ""}


@pytest.fixture(name="kzonecheck")
def fixture_kzonecheck() -> str:
    """knot's zone checker (package knot-dnssecutils)."""
    exe = shutil.which("kzonecheck")
    if exe is None:
        require_or_skip("kzonecheck is not installed (package knot-dnssecutils)")
    assert exe is not None
    return exe


def check(
    kzonecheck: str, origin: str, text: str, folder: Path
) -> subprocess.CompletedProcess[str]:
    zone = folder / f"{origin}zone"
    zone.write_text(text)
    return subprocess.run(
        [kzonecheck, "-o", origin, str(zone)], capture_output=True, text=True, check=False
    )


def test_standalone_zone_with_addresses_loads(mp: Cli, kzonecheck: str, tmp_path: Path) -> None:
    """With [dns] ipv4/ipv6 the standalone zone carries its name server's glue: kzonecheck passes."""
    result = mp("dns", "records", "example.test", "--standalone", "--no-tlsa")
    assert result.exit_code == 0, result.output
    done = check(kzonecheck, "example.test.", result.stdout, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_standalone_zone_without_glue_is_refused(mp: Cli, kzonecheck: str, tmp_path: Path) -> None:
    """Without addresses, a zone naming its own host as NS is refused, not printed broken."""
    fragment = mp("dns", "records", "example.test", "--no-tlsa", env=NO_ADDRESSES)
    assert fragment.exit_code == 0, fragment.output
    # What the command used to print: the fragment made complete with SOA and NS in the zone.
    broken = fragment.stdout.replace(
        "$TTL 3600\n",
        "$TTL 3600\n@ IN SOA mail.example.test. hostmaster.example.test. ( 1 3600 900 1209600 300 )\n"
        "@ IN NS mail.example.test.\n",
        1,
    )
    assert broken != fragment.stdout
    refused = check(kzonecheck, "example.test.", broken, tmp_path)
    assert refused.returncode != 0
    assert "glue" in (refused.stdout + refused.stderr).lower()

    result = mp("dns", "records", "example.test", "--standalone", "--no-tlsa", env=NO_ADDRESSES)
    assert result.exit_code == 28, result.output
    assert "" == result.stdout
    assert "missing glue" in result.stderr
    assert "[dns] ipv4" in result.stderr


def test_name_server_outside_the_zone_needs_no_glue(
    mp: Cli, kzonecheck: str, tmp_path: Path
) -> None:
    """A domain whose name server (the mail host) is in another zone loads without addresses."""
    result = mp("dns", "records", "bücher.test", "--standalone", "--no-tlsa", env=NO_ADDRESSES)
    assert result.exit_code == 0, result.output
    done = check(kzonecheck, "xn--bcher-kva.test.", result.stdout, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
