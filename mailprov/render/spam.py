"""The owner's spam settings at delivery: the values the Dovecot and rspamd templates print.

With ``[rspamd] enabled``, rspamd writes each inbound message's score as whole hundredths
(``X-Spam-Score-Hundredths``, :mod:`mailprov.rules.spam`), Dovecot's ``user_query`` gives
each mailbox its effective threshold and "move to Junk" (mailbox → domain → site, asked at
every delivery, so a change in the store needs no new render), and a global Sieve script
run after the owner's own (``sieve_after``) files what would land in the inbox into Junk.
Nothing of this is rendered while rspamd is off: no score header would be trustworthy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mailprov.rules.spam import SCORE_HEADER, hundredths

if TYPE_CHECKING:
    from pathlib import Path

    from mailprov.settings import SiteConfig

#: The global script, under the Dovecot folder (rendered only with rspamd on).
SCRIPT = "sieve/spam-to-junk.sieve"
#: Where Pigeonhole keeps the script compiled, in each mail home.
BINDIR = ".mailprov-sieve"
#: The plugin settings the user_query sets per mailbox; Pigeonhole's vnd.dovecot.environment
#: shows ``sieve_env_NAME`` to admin scripts as the item ``vnd.dovecot.config.NAME``.
THRESHOLD_ITEM = "mailprov_spam_threshold"
TO_JUNK_ITEM = "mailprov_spam_to_junk"


def enabled(config: SiteConfig) -> bool:
    """Whether the spam rule is rendered (rspamd writes the score it reads)."""
    return config.rspamd.enabled


def context(config: SiteConfig, dovecot_dir: Path) -> dict[str, Any]:
    """The ``spam`` template values."""
    rs = config.rspamd
    return {
        "enabled": rs.enabled,
        "header": SCORE_HEADER,
        "script": str(dovecot_dir / SCRIPT),
        "bindir": BINDIR,
        "threshold_item": THRESHOLD_ITEM,
        "to_junk_item": TO_JUNK_ITEM,
        # SQL literals: the site's defaults, the last level of the user_query's COALESCE.
        "site_threshold": f"{rs.spam_threshold:.2f}",
        "site_threshold_hundredths": hundredths(rs.spam_threshold),
        "site_to_junk": "TRUE" if rs.spam_to_junk else "FALSE",
    }
