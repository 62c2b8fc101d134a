"""The OpenAPI document: valid (openapi-spec-validator), the CLI's copy equal to the server's,
and the live server fuzzed against it (schemathesis) — both independent judges.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import ignored_auth

from tests.conftest import invoke
from tests.web.conftest import OwnerSite

#: Schema-valid is not always valid: the rules and the identity gate turn down input they
#: understood — an address the rules refuse or a wrong token or code (422), an expired request
#: or used code (410), a locked one (423), a taken name (409), missing credentials (401/403).
#: The schema says what is well formed, not what is accepted; a 400 for schema-valid input
#: still fails (the body check and the document disagree).
FUZZ_CONFIG = {
    "checks": {
        "positive_data_acceptance": {
            "expected-statuses": [
                "2xx",
                "401",
                "403",
                "404",
                "409",
                "410",
                "422",
                "423",
                "429",
                "5xx",
            ]
        }
    }
}


@pytest.fixture(scope="session")
def served_document(owner_site: OwnerSite) -> dict[str, Any]:
    """The document as the running server serves it."""
    answer = httpx.get(f"{owner_site.url}/api/v1/openapi.json", timeout=30)
    assert answer.status_code == 200
    document: dict[str, Any] = answer.json()
    return document


def test_document_is_valid_openapi_3_1(served_document: dict[str, Any]) -> None:
    """openapi-spec-validator accepts it; every operation has an id, a summary and responses."""
    validate(served_document)
    assert served_document["openapi"] == "3.1.0"
    ids = []
    for item in served_document["paths"].values():
        for operation in item.values():
            ids.append(operation["operationId"])
            assert operation["summary"]
            assert {"421", "500"} <= set(operation["responses"])
    assert len(ids) == len(set(ids))
    assert "/api/v1/session" in served_document["paths"]


def test_cli_prints_the_same_document(served_document: dict[str, Any]) -> None:
    """'mailprov serve --openapi' needs no store and prints what the server serves."""
    result = invoke("serve", "--openapi")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == served_document


@pytest.fixture(scope="session")
def fuzz_token(owner_site: OwnerSite) -> str:
    """A bearer token of a signed-in owner, so operations behind sign-in are reached."""
    address, password = owner_site.mailbox()
    with owner_site.client() as client:
        return str(owner_site.sign_in(client, address, password)["token"])


@pytest.fixture(scope="session")
def admin_token(owner_site: OwnerSite) -> str:
    """An admin token with every scope."""
    from mailprov.services import tokens
    from mailprov.services.accounts import Actor

    secret, _ = tokens.create(
        owner_site.services.store, list(tokens.SCOPES), actor=Actor("fuzz", int(time.time()))
    )
    return secret.reveal()


# The API's conformance does not depend on the store backend: fuzz on SQLite only.
@pytest.mark.parametrize("owner_site", ["sqlite"], indirect=True)
@pytest.mark.parametrize("mode", ["anonymous", "owner", "admin"])
def test_server_keeps_to_its_document(
    owner_site: OwnerSite, fuzz_token: str, admin_token: str, mode: str
) -> None:
    """Generated requests for every operation: never a 5xx, every answer as documented.

    Anonymous, schemathesis also checks that made-up credentials are refused; with a
    real bearer token (an owner's session, or an admin token) that check is off,
    since the real token rightly wins over a made-up cookie.
    """
    token = {"anonymous": None, "owner": fuzz_token, "admin": admin_token}[mode]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    excluded = [ignored_auth] if token else []
    schema = schemathesis.openapi.from_url(
        f"{owner_site.url}/api/v1/openapi.json", config=SchemathesisConfig.from_dict(FUZZ_CONFIG)
    )
    checked = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=10,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any) -> None:
            case.call_and_validate(headers=headers, excluded_checks=excluded)

        check()
        checked.append(operation.label)
    assert "POST /api/v1/session" in checked
    assert {"POST /api/v1/password-reset", "DELETE /api/v1/account/contacts/{contact}"} <= set(
        checked
    )
