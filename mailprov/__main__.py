"""``python -m mailprov``: the same as the ``mailprov`` command."""

from mailprov.cli import main

raise SystemExit(main())
