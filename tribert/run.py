"""``tribert run``: a pipeline over stdin lines, exactly one JSON output line per input line, in order.

Each input line is one input (question-answering: a JSON object with
``question`` and ``context``; text-classification also accepts
``{"text": ..., "text_pair": ...}``). A line that cannot be run (empty, not
UTF-8, not JSON where JSON is expected, no ``[MASK]``, an input the model cannot
take, or any other failure of the pipeline on it) yields
``{"error": "...", "line": N}`` in its place and the stream goes on. Input is
truncated to what the model takes (:func:`truncated_to_model`).

Lines are read in chunks of up to :data:`LINES_PER_CALL` (or ``--batch-size``, if
larger) and a chunk is one pipeline call, which sorts its lines by length and runs
them ``--batch-size`` rows per forward pass. When the call fails, the chunk is
halved until the failing line stands alone, so one bad line never fails its
neighbours and costs about ``2 log2(chunk)`` extra calls. A chunk never waits for
input that is not there yet, so in an interactive pipe every line is answered as
soon as it is read. On a terminal, stderr shows a bar of the lines done.
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import json
import sys
from collections.abc import Iterable, Iterator
from typing import IO, Any

import numpy as np

from bert_core.errors import TriBertError
from bert_core.inputs import max_sequence_length

from . import progress
from .stream import EXIT_STREAM, MAX_LINE_BYTES, TOO_LONG, discard_stdout, read_chunks

__all__ = ["FRAMEWORKS", "EXIT_OK", "EXIT_FAILED_LINES", "EXIT_USAGE", "EXIT_STREAM", "LINES_PER_CALL", "LineError", "load_pipeline",
           "run_lines", "run_chunks", "run_stream", "check_streams", "truncated_to_model", "jsonable", "read_chunks"]

FRAMEWORKS = {"torch": "bert_torch", "tf": "bert_tf", "flax": "bert_flax"}
_TOP_K_TASKS = ("fill-mask", "text-classification", "question-answering")

#: Exit statuses of ``tribert run`` (docs/cli.md): every line ran; some lines got an error object;
#: the command could not start (an argument, a device the framework does not see, a closed stdin or
#: stdout); and EXIT_STREAM (tribert.stream): the stream broke mid-way (stdout closed, stdin unreadable).
EXIT_OK, EXIT_FAILED_LINES, EXIT_USAGE = 0, 1, 2
#: Lines per pipeline call when that many are ready: enough for the pipeline's length sorting
#: (and the TF/Flax packing) to fill its batches as on a whole file, few enough to answer soon.
LINES_PER_CALL = 256


class LineError(TriBertError):
    """A stdin line that is not an input: empty, not UTF-8, too long to read, or not the JSON the task needs."""


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


@contextlib.contextmanager
def truncated_to_model(pipe: Any) -> Iterator[int]:
    """Within the block, the pipeline's tokenizer truncates to what the model takes; yields that length.

    The limit is the smaller of the tokenizer's ``model_max_length`` and the model's
    ``max_position_embeddings``: a tokenizer saved without a limit, or with a longer one
    than the model's position table, would otherwise hand the model an input it cannot take.
    """
    tokenizer = pipe.tokenizer
    saved = tokenizer.model_max_length
    limit = min(int(saved), max_sequence_length(pipe.task.config)) if saved else max_sequence_length(pipe.task.config)
    tokenizer.model_max_length = limit
    try:
        yield limit
    finally:
        tokenizer.model_max_length = saved


def _decode(raw: bytes | str | None, number: int) -> str:
    if raw is TOO_LONG:
        raise LineError(f"longer than {MAX_LINE_BYTES >> 20} MiB; skipped unread")
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise LineError(f"not valid UTF-8 (byte {raw[err.start]:#04x} at offset {err.start})") from None
    line = raw.rstrip("\r\n")
    if number == 1:
        line = line.removeprefix("\ufeff")  # a byte order mark some editors write
    if not line.strip():
        raise LineError("empty line; each line must hold one input")
    return line


def _item(task: str, line: str) -> Any:
    if task == "question-answering" or (task == "text-classification" and line.lstrip().startswith("{")):
        try:
            item = json.loads(line)
        except json.JSONDecodeError as err:
            raise LineError(f"not valid JSON: {err.msg} at column {err.colno}") from None
        except RecursionError:
            raise LineError("not valid JSON here: nested too deeply") from None
        if not isinstance(item, dict):
            raise LineError(f"{task} needs a JSON object per line, got a JSON {type(item).__name__}")
        return item
    return line


def _message(err: Exception, limit: int = 500) -> str:
    """One line of at most ``limit`` characters (errors may quote the input); one not tribert's own names its type."""
    text = " ".join(str(err).split())
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    if isinstance(err, TriBertError) and text:
        return text
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _encode(result: Any) -> str:
    # allow_nan=False: a NaN score would make the line invalid JSON; it becomes that line's error instead.
    try:
        return json.dumps(jsonable(result), ensure_ascii=False, allow_nan=False)
    except ValueError:
        raise TriBertError("the result holds NaN or infinity (try --dtype float32)") from None


class _Runner:
    """Runs chunks of lines through ``pipe`` with per-line error isolation; counts failed lines."""

    def __init__(self, pipe: Any, task: str, out: IO[str], err: IO[str], params: dict[str, Any], limit: int | None,
                 bar: Any):  # fmt: skip
        self.pipe, self.task, self.out, self.err, self.params, self.limit = pipe, task, out, err, params, limit
        self.bar = bar  # lines done, on stderr when it is a terminal (tribert.progress); messages go through it
        self.failures = 0
        self.warned = False

    def _warn_if_truncated(self, number: int, item: Any) -> None:
        """One warning per stream, for the first line longer than the model takes (question answering windows instead)."""
        if self.warned or self.limit is None or self.task == "question-answering":
            return
        text, pair = (item.get("text"), item.get("text_pair")) if isinstance(item, dict) else (item, None)
        if not isinstance(text, str) or len(text.encode()) + len((pair or "").encode()) + 3 <= self.limit:
            return  # no WordPiece token is shorter than a byte: this one fits
        length = len(self.pipe.tokenizer(text, pair if isinstance(pair, str) else None, truncation=False, verbose=False)["input_ids"])
        if length > self.limit:
            self.warned = True
            self.bar.write(f"tribert run: warning: line {number} has {length} tokens, more than the model takes "
                           f"({self.limit}); it and every longer line are truncated to {self.limit} tokens", file=self.err)

    def _run(self, items: dict[int, Any]) -> dict[int, str | Exception]:
        """Each line's JSON result or error: one pipeline call, halved on failure until the bad line stands alone."""
        if len(items) == 1:
            (number, item), = items.items()
            try:
                return {number: _encode(self.pipe(item, **self.params))}
            except Exception as exc:  # noqa: BLE001 - every failure is this line's error object
                return {number: exc}
        try:
            results = self.pipe(list(items.values()), progress=False, **self.params)
        except Exception:  # noqa: BLE001 - some line failed the call: halves find it in log2(n) calls
            numbers = list(items)
            half = len(numbers) // 2
            return self._run({n: items[n] for n in numbers[:half]}) | self._run({n: items[n] for n in numbers[half:]})
        records: dict[int, str | Exception] = {}
        for number, result in zip(items, results, strict=True):
            try:
                records[number] = _encode(result)
            except Exception as exc:  # noqa: BLE001
                records[number] = exc
        return records

    def chunk(self, numbered: list[tuple[int, Any]]) -> None:
        """Run one chunk and write its output lines, in input order."""
        records: dict[int, str | Exception] = {}
        items: dict[int, Any] = {}
        for number, raw in numbered:
            try:
                items[number] = _item(self.task, _decode(raw, number))
                self._warn_if_truncated(number, items[number])
            except Exception as exc:  # noqa: BLE001 - every failure is this line's error object
                records[number] = exc
        if items:
            records |= self._run(items)
        for number, _ in numbered:
            record = records[number]
            if isinstance(record, Exception):
                self.failures += 1
                message = _message(record)
                self.bar.write(f"tribert run: line {number}: {message}", file=self.err)
                record = json.dumps({"error": message, "line": number}, ensure_ascii=False)
            self.out.write(record + "\n")
        self.out.flush()
        self.bar.update(len(numbered))


def run_chunks(pipe: Any, task: str, chunks: Iterable[list[Any]], out: IO[str], *, top_k: int | None = None,
               limit: int | None = None, err: IO[str] | None = None) -> int:  # fmt: skip
    """Run every line of ``chunks`` (lists of str / bytes lines; :data:`TOO_LONG` for one skipped unread).

    ``limit``: warn once on stderr when a line is longer (the caller truncates: :func:`truncated_to_model`).
    Returns how many lines failed. Raises the pipeline's error at once for a bad ``top_k``.
    """
    params = {"top_k": top_k} if top_k is not None and task in _TOP_K_TASKS else {}
    pipe.task.parameters(**params)  # a bad --top-k is the command's error, not every line's
    err = err or sys.stderr
    with progress.bar(desc="tribert run", unit="line", file=err) as bar:
        runner = _Runner(pipe, task, out, err, params, limit, bar)
        number = 0
        for chunk in chunks:
            runner.chunk([(number + i, raw) for i, raw in enumerate(chunk, 1)])
            number += len(chunk)
    return runner.failures


def run_lines(pipe: Any, task: str, lines: Iterable[str | bytes], out: IO[str], top_k: int | None = None,
              batch_size: int = 1) -> int:  # fmt: skip
    """Run ``pipe`` on every line (one output line each), ``batch_size`` lines per call; returns how many failed."""
    iterator = iter(lines)
    chunks = iter(lambda: list(itertools.islice(iterator, batch_size)), [])
    return run_chunks(pipe, task, chunks, out, top_k=top_k)


def check_streams(stdin: IO[str] | None, stdout: IO[str] | None) -> None:
    """Raise :class:`LineError` when the process started with stdin or stdout closed (Python sets them to None)."""
    if stdin is None or stdout is None:
        raise LineError(f"{'stdin' if stdin is None else 'stdout'} is closed; pipe input lines in and read results out")


def run_stream(pipe: Any, task: str, stdin: IO[str], stdout: IO[str], stderr: IO[str], *,
               top_k: int | None = None, batch_size: int = 1) -> int:  # fmt: skip
    """``tribert run``'s loop over the process's streams, truncated to the model; returns the exit status.

    Raises:
        PipelineError: a bad ``top_k`` (nothing was run).
    """
    with truncated_to_model(pipe) as limit:
        try:
            chunks = read_chunks(stdin.fileno(), max(batch_size, LINES_PER_CALL))
            failures = run_chunks(pipe, task, chunks, stdout, top_k=top_k, limit=limit, err=stderr)
        except BrokenPipeError:
            # Nobody reads the results any more: say so once, and keep the interpreter's
            # final flush of stdout from raising again at exit.
            discard_stdout(stdout)
            print("tribert run: error: stdout was closed (broken pipe); the remaining lines were not run", file=stderr)
            return EXIT_STREAM
        except OSError as exc:
            print(f"tribert run: error: reading stdin failed ({exc}); the remaining lines were not run", file=stderr)
            return EXIT_STREAM
    return EXIT_FAILED_LINES if failures else EXIT_OK
