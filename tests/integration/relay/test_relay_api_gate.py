"""The HTTP API refuses what a web page could send it (issue 10, item 9), from curl.

A page a developer visits can make the browser send requests to 127.0.0.1
(cross-site ``text/plain`` POSTs), or, through DNS rebinding, send them with the
page's own ``Host`` and read the answers. The relay answers only its own Host
names, refuses foreign Origins and non-JSON writes, and takes a bearer token.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mailprov.errors import ConfigInvalid, OpenRelayRefused
from mailprov.testing import RelayRunner, relay_options
from tests.conftest import invoke
from tests.integration.relay.relay_helpers import need

TOKEN = "k3y-" + "0123456789abcdef" * 2


def curl(
    relay: RelayRunner,
    path: str,
    *headers: str,
    method: str = "GET",
    data: str | None = None,
) -> tuple[int, dict[str, str], Any]:
    """Status, response headers (lower-case names) and JSON body of one curl request."""
    assert relay.server is not None
    url = f"http://127.0.0.1:{relay.server.api_port}/api/v1{path}"
    args = [need("curl"), "-sS", "-D", "-", "-X", method, "--max-time", "20", url]
    for header in headers:
        args += ["-H", header]
    if data is not None:
        args += ["--data-binary", data]
    out = subprocess.run(args, capture_output=True, check=True, timeout=30).stdout.decode()
    head, _, body = out.partition("\r\n\r\n")
    status_line, *lines = head.split("\r\n")
    fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), fields, json.loads(body) if body else None


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    """A 0600 file holding the API token."""
    path = tmp_path / "api-token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o600)
    return path


def test_a_forged_host_header_is_refused(capture: RelayRunner) -> None:
    """A Host the API does not answer for (DNS rebinding) gets 421 and a JSON error."""
    status, _, body = curl(capture, "/messages", "Host: attacker.example")
    assert (status, body["error"]["code"]) == (421, "host-refused")
    status, _, body = curl(capture, "/health", "Host: attacker.example:8025")
    assert status == 421


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "localhost", "[::1]", "localhost:{port}", "127.0.0.1:{port}"]
)
def test_own_host_names_are_answered(capture: RelayRunner, host: str) -> None:
    """The listen address, localhost, 127.0.0.1 and [::1], with or without the port, pass."""
    assert capture.server is not None
    given = host.format(port=capture.server.api_port)
    status, _, body = curl(capture, "/health", f"Host: {given}")
    assert (status, body["status"]) == (200, "ok")


def test_configured_api_hosts_are_answered(make_relay) -> None:
    """A name from relay.api_hosts is answered; another name still is not."""
    relay = make_relay(api_hosts=("relay.lan",))
    assert curl(relay, "/health", "Host: relay.lan")[0] == 200
    assert curl(relay, "/health", "Host: other.lan")[0] == 421


def test_a_text_plain_post_is_refused_with_415(capture: RelayRunner) -> None:
    """A cross-site-style text/plain POST cannot add a fault rule; JSON still can."""
    rule = '{"rule": "rcpt:*@x.test=550 5.1.1 no"}'
    status, _, body = curl(capture, "/faults", "Content-Type: text/plain", method="POST", data=rule)
    assert (status, body["error"]["code"]) == (415, "unsupported-media-type")
    assert capture.server is not None
    assert capture.server.faults.rules == []
    status, _, _ = curl(
        capture, "/faults", "Content-Type: application/json", method="POST", data=rule
    )
    assert status == 201
    assert curl(capture, "/faults", method="DELETE")[0] == 415  # no Content-Type at all
    capture.clear_faults(seed=0)


def test_a_foreign_origin_is_refused(capture: RelayRunner) -> None:
    """An Origin that is not an allowed host gets 403, even with the right Host; its own passes."""
    assert capture.server is not None
    status, _, body = curl(capture, "/messages", "Origin: http://attacker.example")
    assert (status, body["error"]["code"]) == (403, "origin-refused")
    assert curl(capture, "/messages", "Origin: null")[0] == 403
    own = f"Origin: http://127.0.0.1:{capture.server.api_port}"
    assert curl(capture, "/messages", own)[0] == 200


def test_the_bearer_token_is_required_when_set(make_relay, token_file: Path) -> None:
    """Without or with a wrong token: 401 with WWW-Authenticate: Bearer; the right one: 200."""
    relay = make_relay(api_token_file=token_file)
    status, headers, body = curl(relay, "/messages")
    assert status == 401
    assert headers["www-authenticate"].startswith("Bearer")
    assert TOKEN not in json.dumps(body)
    assert curl(relay, "/messages", "Authorization: Bearer wrong-token")[0] == 401
    assert curl(relay, "/messages", f"Authorization: Basic {TOKEN}")[0] == 401
    status, _, body = curl(relay, "/messages", f"Authorization: Bearer {TOKEN}")
    assert (status, body["count"]) == (200, 0)
    assert TOKEN not in json.dumps(relay.server.describe() if relay.server else {})


def test_a_readable_token_file_is_refused_at_start(tmp_path: Path, token_file: Path) -> None:
    """A token file that others may read stops the start, naming the setting, not the token."""
    token_file.chmod(0o644)
    runner = RelayRunner(relay_options(tmp_path / "r", api_token_file=token_file))
    with pytest.raises(ConfigInvalid) as caught:
        runner.start()
    assert "relay.api_token_file" in caught.value.message
    assert TOKEN not in caught.value.message


def test_an_api_beyond_loopback_needs_a_token(tmp_path: Path) -> None:
    """An API on a non-loopback address without api_token_file is refused before it listens."""
    runner = RelayRunner(relay_options(tmp_path / "r", api=("0.0.0.0", 0)))  # noqa: S104
    with pytest.raises(OpenRelayRefused) as caught:
        runner.start()
    assert "relay.api_token_file" in caught.value.message
    result = invoke(
        "relay", "serve", "--listen", "127.0.0.1:0", "--api-listen", "0.0.0.0:0", cwd=tmp_path
    )
    assert result.exit_code == 61
    assert "relay.api_token_file" in result.stderr
    assert not (tmp_path / "relay").exists()  # nothing was started


def test_the_openapi_document_describes_the_gate(capture: RelayRunner) -> None:
    """The document has the bearer scheme, and operations list 401/421 (writes 415 too)."""
    status, _, doc = curl(capture, "/openapi.json")
    assert status == 200
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert {"400", "401", "403", "421"} <= set(doc["paths"]["/api/v1/messages"]["get"]["responses"])
    assert "415" in doc["paths"]["/api/v1/faults"]["post"]["responses"]
    assert "415" not in doc["paths"]["/api/v1/faults"]["get"]["responses"]
