"""``doctor``'s look at inbound filtering while ``[rspamd] enabled``: rspamd's installed
config passes ``rspamadm configtest``, its controller answers, and its Redis answers.

A Redis that does not answer is an error, not a silent no-op: rspamd then still scans,
but Bayes, learning from the owners' moves and greylisting quietly do nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailprov.render import Layout
from mailprov.services.findings import ERROR, INFO, Finding
from mailprov.settings.checks import parse_endpoint
from mailprov.system import rspamd

if TYPE_CHECKING:
    from pathlib import Path

    from mailprov.settings import SiteConfig
    from mailprov.system.run import Runner

START_RSPAMD = (
    "start it ('systemctl start mailprov-rspamd'; 'journalctl -u mailprov-rspamd' says why "
    "it stopped)"
)


def rspamd_health(
    runner: Runner, settings: SiteConfig, target: Path | None, *, timeout: float = 2.0
) -> list[Finding]:
    """rspamd's config, controller and Redis (nothing while [rspamd] enabled is off)."""
    rs = settings.rspamd
    if not rs.enabled:
        return []
    out = _config(runner, settings, target)
    where = f"{rs.host}:{rs.controller_port}"
    down = rspamd.controller_ping(rs.host, rs.controller_port, timeout=timeout)
    if down:
        out.append(
            Finding(
                "doctor.rspamd.down",
                ERROR,
                f"rspamd does not answer on {where} ([rspamd] controller_port): {down}; "
                "while it is down Postfix defers all mail arriving on port 25",
                START_RSPAMD,
                where,
            )
        )
    else:
        out.append(Finding("doctor.rspamd.ok", INFO, f"rspamd answers on {where}", "", where))
    host, port = parse_endpoint(rs.redis)
    problem = rspamd.redis_ping(host, port, timeout=timeout)
    if problem:
        out.append(
            Finding(
                "doctor.redis.down",
                ERROR,
                f"rspamd's Redis at {rs.redis} ([rspamd] redis) does not answer PING: {problem}; "
                "without it rspamd learns nothing from moves to and from Junk, Bayes does not "
                "score and greylisting is off",
                "start Redis ('systemctl start redis-server') or point [rspamd] redis at the "
                "one rspamd should use, then 'mailprov deploy apply --reload'",
                rs.redis,
            )
        )
    else:
        out.append(Finding("doctor.redis.ok", INFO, f"Redis answers on {rs.redis}", "", rs.redis))
    return out


def _config(runner: Runner, settings: SiteConfig, target: Path | None) -> list[Finding]:
    """``rspamadm configtest`` on the installed files (their absence is doctor.config.missing)."""
    config_dir = Layout.for_target(settings, target).rspamd_dir
    if not (config_dir / "rspamd.conf").is_file():
        return []
    db_dir = str(settings.resolve_path(settings.rspamd.db_dir))
    problems = rspamd.check(runner, config_dir, db_dir)
    if not problems:
        return []
    return [
        Finding(
            "doctor.rspamd.config_invalid",
            ERROR,
            f"rspamadm configtest refuses the installed {config_dir}/rspamd.conf: {problems[0]}",
            "run 'mailprov deploy plan --diff' to see what differs from the site config, then "
            "'mailprov deploy apply --overwrite-edits --reload'",
            str(config_dir),
        )
    ]
