"""One logging switch for every tribert package (the counterpart of ``transformers.utils.logging``).

The library logs under one logger per package (``bert_core``, ``tokenization``,
``conversion``, ``bert_pipelines``, ``bert_torch``, ``bert_tf``, ``bert_flax``,
``tribert``); a module logs through ``get_logger(__name__)``, a child of its
package's logger. ``set_verbosity`` sets the level of all of them at once.
The default is WARNING, or ``TRIBERT_VERBOSITY`` (``debug``, ``info``,
``warning``, ``error``, ``critical``), read when ``bert_core`` is imported.

Records propagate to the root logger as usual, so an application's own
logging setup (``logging.basicConfig``, pytest's ``caplog``) sees them. When
the application configured nothing, one stderr handler prints them, as
transformers' default handler does; it stands aside as soon as the root
logger has a handler, so nothing is printed twice.

``disable_progress_bar()`` / ``enable_progress_bar()`` switch the tqdm bars the
library shows (pipelines over many inputs, hub downloads through
``huggingface_hub``).
"""

from __future__ import annotations

import logging
import os
import sys
import threading

__all__ = [
    "LIBRARY_LOGGERS",
    "get_logger",
    "get_verbosity",
    "set_verbosity",
    "set_verbosity_debug",
    "set_verbosity_info",
    "set_verbosity_warning",
    "set_verbosity_error",
    "disable_progress_bar",
    "enable_progress_bar",
    "is_progress_bar_enabled",
    "DEBUG",
    "INFO",
    "WARNING",
    "ERROR",
    "CRITICAL",
]

DEBUG, INFO, WARNING, ERROR, CRITICAL = logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL

#: The package loggers the switch governs (the top-level packages of the distribution).
LIBRARY_LOGGERS = ("bert_core", "tokenization", "conversion", "bert_pipelines", "bert_torch", "bert_tf", "bert_flax",
                   "tribert")  # fmt: skip
LEVELS = {"debug": DEBUG, "info": INFO, "warning": WARNING, "error": ERROR, "critical": CRITICAL}
ENV_VERBOSITY = "TRIBERT_VERBOSITY"

_lock = threading.Lock()
_progress_bars = os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS", "").strip().lower() not in ("1", "true", "yes", "on")


class _StderrHandler(logging.Handler):
    """Prints to the current ``sys.stderr``, only while the application has configured no root handler.

    The stream is looked up per record (like logging's last-resort handler), so
    a redirected ``sys.stderr`` (pytest's capsys, ``contextlib.redirect_stderr``) gets the text.
    """

    def emit(self, record: logging.LogRecord) -> None:
        if logging.getLogger().handlers:  # the record propagates there: do not print it twice
            return
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.handleError(record)


_handler = _StderrHandler()
_handler.setFormatter(logging.Formatter("[%(name)s] %(levelname)s: %(message)s"))


def _level(verbosity: int | str) -> int:
    """``verbosity`` as a logging level: an int (``logging.INFO``) or a name (``"info"``)."""
    if isinstance(verbosity, str):
        if verbosity.strip().lower() not in LEVELS:
            raise ValueError(f"verbosity must be one of {', '.join(LEVELS)} or a logging level, got {verbosity!r}")
        return LEVELS[verbosity.strip().lower()]
    if isinstance(verbosity, bool) or not isinstance(verbosity, int):
        raise ValueError(f"verbosity must be a logging level (int) or one of {', '.join(LEVELS)}, got {verbosity!r}")
    return verbosity


def _default_level() -> int:
    value = os.environ.get(ENV_VERBOSITY, "").strip().lower()
    if value and value not in LEVELS:
        logging.getLogger("bert_core").warning(
            "ignoring %s=%r: use one of %s", ENV_VERBOSITY, value, ", ".join(LEVELS))  # fmt: skip
        return WARNING
    return LEVELS.get(value, WARNING)


def _configure() -> None:
    """Attach the stderr handler and the default level to every package logger (once)."""
    with _lock:
        level = _default_level()
        for name in LIBRARY_LOGGERS:
            logger = logging.getLogger(name)
            if _handler not in logger.handlers:
                logger.addHandler(_handler)
            logger.setLevel(level)


def get_logger(name: str | None = None) -> logging.Logger:
    """The logger for ``name`` (a module's ``__name__``); without a name, the ``tribert`` logger."""
    return logging.getLogger(name or "tribert")


def get_verbosity() -> int:
    """The current level of the library's loggers (``logging.WARNING`` by default)."""
    return logging.getLogger(LIBRARY_LOGGERS[0]).getEffectiveLevel()


def set_verbosity(verbosity: int | str) -> None:
    """Set the level of every tribert logger: ``logging.INFO`` / ``tribert.logging.INFO`` or ``"info"``.

    Raises:
        ValueError: ``verbosity`` is neither a logging level nor a level name.
    """
    level = _level(verbosity)
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(level)


def set_verbosity_debug() -> None:
    """Every message, debug included."""
    set_verbosity(DEBUG)


def set_verbosity_info() -> None:
    """Info and above: loading reports of what was loaded, as well as warnings."""
    set_verbosity(INFO)


def set_verbosity_warning() -> None:
    """Warnings and errors only (the default)."""
    set_verbosity(WARNING)


def set_verbosity_error() -> None:
    """Errors only."""
    set_verbosity(ERROR)


def is_progress_bar_enabled() -> bool:
    """Whether the library shows tqdm progress bars."""
    return _progress_bars


def _hub_progress_bars(enabled: bool) -> None:
    """Switch huggingface_hub's download bars too, if it is imported or importable (a dependency)."""
    try:
        from huggingface_hub.utils import disable_progress_bars, enable_progress_bars
    except ImportError:  # pragma: no cover - huggingface_hub is a dependency
        return
    (enable_progress_bars if enabled else disable_progress_bars)()


def enable_progress_bar() -> None:
    """Show the library's tqdm bars (pipelines over many inputs, hub downloads)."""
    global _progress_bars
    _progress_bars = True
    _hub_progress_bars(True)


def disable_progress_bar() -> None:
    """Hide the library's tqdm bars (an explicit ``progress=True`` argument still shows one)."""
    global _progress_bars
    _progress_bars = False
    _hub_progress_bars(False)


_configure()
