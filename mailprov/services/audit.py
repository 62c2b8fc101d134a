"""Reading and checking the audit log."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailprov.errors import AuditChainBroken
from mailprov.store import audit

if TYPE_CHECKING:
    from mailprov.store import Store
    from mailprov.store.audit import AuditRecord, ChainReport


def list_records(
    store: Store,
    *,
    since: int | None = None,
    target: str | None = None,
    action: str | None = None,
    limit: int | None = None,
) -> list[AuditRecord]:
    """Audit records, oldest first."""
    with store.read() as conn:
        return audit.records(conn, since=since, target=target, action=action, limit=limit)


def verify_chain(store: Store) -> ChainReport:
    """The whole chain checked.

    Raises:
        AuditChainBroken: naming the first record that does not fit.
    """
    with store.read() as conn:
        report = audit.verify(conn)
    if not report.ok:
        raise AuditChainBroken(
            f"audit chain broken at record {report.broken_at}: {report.reason}",
            record=report.broken_at,
            checked=report.count,
        )
    return report
