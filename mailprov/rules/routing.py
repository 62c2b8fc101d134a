"""Which aliases can take mail: the rule the Postfix alias maps apply, for reports.

``templates/postfix/_deliverable.j2`` holds the same rule in SQL (Postfix asks it at RCPT
time); this is its pure twin, for telling an admin which aliases a change leaves with
nowhere to deliver. An address can take mail when it is an enabled mailbox of an
enabled domain, lies outside every domain served here (a forward), or is an enabled
alias with at least one destination that can (followed to any depth; cycles lead nowhere).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set


def _domain(address: str) -> str:
    return address.rpartition("@")[2]


def deliverable(
    aliases: Mapping[str, Iterable[str]],
    mailboxes: Set[str],
    local_domains: Set[str],
) -> set[str]:
    """The aliases (enabled ones, as keys of ``aliases``) that lead to at least one mailbox
    or forward.

    Args:
        aliases: enabled alias address (``@domain`` for a catch-all) to its destinations.
        mailboxes: the enabled mailboxes of enabled domains.
        local_domains: every domain served here, enabled or not.
    """
    targets = {alias: tuple(dests) for alias, dests in aliases.items()}
    live = {
        alias
        for alias, dests in targets.items()
        if any(d in mailboxes or _domain(d) not in local_domains for d in dests)
    }
    grew = True
    while grew:  # a fixed point: an alias is live once one destination is
        fresh = {a for a, dests in targets.items() if a not in live and live.intersection(dests)}
        live |= fresh
        grew = bool(fresh)
    return live


def reaching(aliases: Mapping[str, Iterable[str]], address: str) -> set[str]:
    """The aliases whose mail reaches ``address``, directly or through other aliases."""
    found: set[str] = set()
    todo = [address]
    while todo:
        target = todo.pop()
        for alias, dests in aliases.items():
            if alias not in found and target in dests:
                found.add(alias)
                todo.append(alias)
    return found
