"""How loud the ``tribert`` command is: tribert's own log, and the libraries it drives.

``tribert parity`` loads `transformers` models as its reference and the hub
for downloads; their progress bars and advice ("`sdpa` attention does not
support `output_attentions=True`") are noise to a user of the command, and so
is TensorFlow's C++ start-up log. By default the command shows tribert's
warnings and every error, and silences the rest; ``-v`` brings them back,
``-vv`` adds debug detail, ``-q`` leaves errors only.

Each library is set through its own switch: the environment variable it reads
when imported (``TRANSFORMERS_VERBOSITY``, ``HF_HUB_VERBOSITY``,
``HF_HUB_DISABLE_PROGRESS_BARS``, ``TF_CPP_MIN_LOG_LEVEL``) and, when it is
already imported, its logging API. Without ``-v``/``-q`` a variable the user
set wins.
"""

from __future__ import annotations

import logging
import os
import sys

from bert_core import logging as tribert_logging

__all__ = ["configure"]


def _levels(verbose: int, quiet: bool) -> tuple[int, str, bool]:
    """(tribert's level, the level name for transformers and the hub, whether their bars show)."""
    if quiet:
        return logging.ERROR, "error", False
    if verbose >= 2:
        return logging.DEBUG, "info", True
    if verbose == 1:
        return logging.INFO, "warning", True
    return tribert_logging.get_verbosity(), "error", False  # tribert: TRIBERT_VERBOSITY or warning


def _set_env(name: str, value: str, explicit: bool) -> None:
    """Set ``name`` for libraries imported later; the user's own setting wins unless a flag was given."""
    if explicit:
        os.environ[name] = value
    else:
        os.environ.setdefault(name, value)


def configure(verbose: int = 0, quiet: bool = False) -> None:
    """Apply the command's verbosity: ``verbose`` is the count of ``-v``, ``quiet`` is ``-q``."""
    explicit = quiet or verbose > 0
    level, others, bars = _levels(verbose, quiet)
    _set_env("TRANSFORMERS_VERBOSITY", others, explicit)
    _set_env("HF_HUB_VERBOSITY", others, explicit)
    if not bars:
        _set_env("HF_HUB_DISABLE_PROGRESS_BARS", "1", explicit)
        _set_env("TF_CPP_MIN_LOG_LEVEL", "2", explicit)  # 2: C++ info and warnings off, errors shown
    else:
        os.environ.pop("HF_HUB_DISABLE_PROGRESS_BARS", None)
        if os.environ.get("TF_CPP_MIN_LOG_LEVEL") in ("1", "2"):
            os.environ.pop("TF_CPP_MIN_LOG_LEVEL")
    tribert_logging.set_verbosity(level)
    if quiet:  # tribert's own bars (pipelines over many lines) go too
        tribert_logging.disable_progress_bar()

    # Libraries already imported read no environment again: use their switches.
    hub_bars = os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS") != "1"
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars, enable_progress_bars
        from huggingface_hub.utils import logging as hub_logging

        _apply(hub_logging.set_verbosity, os.environ["HF_HUB_VERBOSITY"])
        (enable_progress_bars if hub_bars else disable_progress_bars)()
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        _apply(hf_logging.set_verbosity, os.environ["TRANSFORMERS_VERBOSITY"])
        (hf_logging.enable_progress_bar if hub_bars else hf_logging.disable_progress_bar)()


def _apply(set_verbosity, name: str) -> None:
    """Call a library's ``set_verbosity`` with the level ``name``; a name it would not know is left alone."""
    if name.lower() in tribert_logging.LEVELS:
        set_verbosity(tribert_logging.LEVELS[name.lower()])
