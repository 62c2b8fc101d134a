"""A progress bar on a terminal (rich), nothing when stderr is not one."""

from __future__ import annotations

import sys
from typing import Any


class Progress:
    """Reports progress of a long job; silent unless stderr is a terminal."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._bar: Any = None
        self._task: Any = None

    def start(self, total: int) -> None:
        """Begin, knowing the amount of work."""
        if not sys.stderr.isatty() or total <= 0:
            return
        from rich.progress import (  # lazy: rich is slow to import
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichProgress

        self._bar = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            transient=True,
        )
        self._bar.start()
        self._task = self._bar.add_task(self.label, total=total)

    def advance(self, amount: int = 1) -> None:
        """Record ``amount`` more units done."""
        if self._bar is not None:
            self._bar.advance(self._task, amount)

    def close(self) -> None:
        """Remove the bar."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def progress_bar(label: str) -> Progress:
    """A progress reporter for ``label``."""
    return Progress(label)
