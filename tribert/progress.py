"""The command's progress bars: tqdm on stderr, only when stderr is a terminal.

A bar is shown when all of these hold: the stream is a terminal (tqdm's
``disable=None``, so a log file or a pipe never gets carriage returns), the
library's bars are on (:func:`bert_core.logging.is_progress_bar_enabled`;
``-q`` turns them off) and tribert's verbosity is WARNING or louder
(``TRIBERT_VERBOSITY=error`` silences them as ``-q`` does).
"""

from __future__ import annotations

import logging
import sys
from typing import IO, Any, Iterable

from tqdm import tqdm

from bert_core.logging import get_verbosity, is_progress_bar_enabled

__all__ = ["bar", "enabled"]


def enabled() -> bool:
    """Whether the command may show bars at all (a terminal is still needed)."""
    return is_progress_bar_enabled() and get_verbosity() <= logging.WARNING


def bar(iterable: Iterable[Any] | None = None, *, desc: str, unit: str, total: int | None = None,
        file: IO[str] | None = None) -> tqdm:  # fmt: skip
    """A tqdm bar on ``file`` (default the current ``sys.stderr``), off unless it is a terminal and bars are on."""
    return tqdm(iterable, desc=desc, unit=unit, total=total, file=file or sys.stderr, leave=False,
                disable=None if enabled() else True)  # fmt: skip
