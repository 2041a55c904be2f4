"""``tribert run``: a pipeline over stdin lines, one JSON result per output line.

Each input line is one input (question-answering: a JSON object with
``question`` and ``context``; text-classification also accepts
``{"text": ..., "text_pair": ...}``). Results are flushed line by line, so the
command works in a shell pipe; a bad line (not JSON where JSON is expected,
no ``[MASK]``, or an input the model cannot take: an id outside its vocabulary,
a token type or length past its tables, which the pipelines engine checks
before every forward) yields ``{"error": ..., "line": N}`` on its own output
line and the stream goes on; the command then exits non-zero.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterable
from typing import IO, Any

import numpy as np

from bert_core.errors import TriBertError

__all__ = ["FRAMEWORKS", "load_pipeline", "run_lines", "jsonable"]

FRAMEWORKS = {"torch": "bert_torch", "tf": "bert_tf", "flax": "bert_flax"}
_TOP_K_TASKS = ("fill-mask", "text-classification", "question-answering")


def jsonable(value: Any) -> Any:
    """Numpy arrays and scalars -> plain lists and numbers, recursively."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def load_pipeline(task: str, model: str, framework: str = "torch", device: str | None = None, dtype: str | None = None, **kwargs: Any):
    """The ``pipeline`` of backend ``framework``, from its ``pipeline`` module (imported only now)."""
    if framework not in FRAMEWORKS:
        raise TriBertError(f"--framework must be one of {', '.join(FRAMEWORKS)}, got {framework!r}")
    backend = importlib.import_module(f"{FRAMEWORKS[framework]}.pipeline")
    return backend.pipeline(task, model=model, device=device, dtype=dtype, **kwargs)


def _item(task: str, line: str) -> Any:
    if task == "question-answering" or (task == "text-classification" and line.lstrip().startswith("{")):
        try:
            return json.loads(line)
        except json.JSONDecodeError as err:
            raise TriBertError(f"not a JSON object: {err.msg} at column {err.colno}") from None
    return line


def run_lines(pipe: Any, task: str, lines: Iterable[str], out: IO[str], top_k: int | None = None) -> int:
    """Run ``pipe`` on every non-empty line; returns how many lines failed."""
    params = {"top_k": top_k} if top_k is not None and task in _TOP_K_TASKS else {}
    failures = 0
    for number, raw in enumerate(lines, 1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        try:
            record = jsonable(pipe(_item(task, line), **params))
        except (ValueError, KeyError, TypeError) as err:  # TriBertError is a ValueError
            failures += 1
            message = " ".join(str(err).split()) or type(err).__name__
            record = {"error": message, "line": number}
            print(f"tribert run: line {number}: {message}", file=sys.stderr)
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
        out.flush()
    return failures
