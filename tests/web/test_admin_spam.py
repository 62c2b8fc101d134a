"""The admin API's mailbox change carries the spam settings as 'mailbox set' does: given
values are set (null: the domain's default), absent ones left alone, a threshold at the
reject score refused. Both store backends."""

from __future__ import annotations

import secrets

from tests.web.conftest import OwnerSite
from tests.web.test_admin_api import _client, _token


def test_patch_sets_and_clears_the_spam_settings(owner: OwnerSite) -> None:
    """PATCH with spam_threshold/spam_to_junk: changes as before/after, null clears, the
    reject score is refused (422) and changes nothing."""
    domain = f"d{secrets.token_hex(4)}.test"
    box = f"ann@{domain}"
    with _client(owner, _token(owner, "accounts:write", "accounts:read")) as api:
        assert api.post("/api/v1/admin/domains", json={"name": domain}).status_code == 200
        assert api.post("/api/v1/admin/mailboxes", json={"address": box}).status_code == 200
        url = f"/api/v1/admin/mailboxes/{box}"
        patched = api.patch(url, json={"spam_threshold": 5.5, "spam_to_junk": False})
        assert patched.status_code == 200, patched.text
        assert patched.json()["changes"] == {
            "spam_threshold": {"before": None, "after": 5.5},
            "spam_to_junk": {"before": None, "after": False},
        }
        assert api.patch(url, json={"quota": "1G"}).json()["changes"].keys() == {"quota_bytes"}
        refused = api.patch(url, json={"spam_threshold": 15})
        assert refused.status_code == 422, refused.text
        cleared = api.patch(url, json={"spam_threshold": None})
        assert cleared.json()["changes"] == {"spam_threshold": {"before": 5.5, "after": None}}
        again = api.patch(url, json={"spam_threshold": None, "spam_to_junk": False})
        assert again.json()["changed"] is False
