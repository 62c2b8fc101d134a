"""The ``mailprov`` command line. Only this package talks to humans.

``main()`` answers ``--version`` before importing anything heavy (cold start
matters to scripts that call mailprov in loops); everything else goes through
the click group in :mod:`mailprov.cli.app`, whose ``main`` is the one error
boundary (see :func:`mailprov.cli.app.MailprovGroup.main`).
"""

from __future__ import annotations

import sys
from typing import Any

from mailprov import __version__


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit status."""
    args = sys.argv[1:] if argv is None else argv
    if args in (["--version"], ["-V"]):
        sys.stdout.write(f"mailprov {__version__}\n")
        return 0
    from mailprov.cli.app import cli  # lazy: keeps --version fast

    return int(cli.main(args=args, prog_name="mailprov", standalone_mode=True) or 0)


def __getattr__(name: str) -> Any:
    if name == "cli":
        from mailprov.cli.app import cli

        return cli
    raise AttributeError(name)
