"""The ``tribert`` command line: ``convert``, ``run``, ``parity``, ``env`` (see :mod:`tribert.cli`).

The top layer of the package table (docs/architecture.md): it may import every
backend, and nothing imports it. Importing it imports no framework; each
subcommand imports the backends it needs.

It also re-exports the library-wide switches users reach for first, as
``transformers`` does: ``tribert.__version__`` and the logging switch of
:mod:`bert_core.logging` (``tribert.set_verbosity_info()``, ...).
"""

from bert_core._version import __version__
from bert_core.logging import (
    disable_progress_bar,
    enable_progress_bar,
    get_logger,
    get_verbosity,
    is_progress_bar_enabled,
    set_verbosity,
    set_verbosity_debug,
    set_verbosity_error,
    set_verbosity_info,
    set_verbosity_warning,
)

__all__ = [
    "__version__",
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
]
