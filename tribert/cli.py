"""The ``tribert`` command.

Subcommands:
    env       versions and devices of the three frameworks.
    convert   any checkpoint format -> any format, via canonical safetensors.
    run       a pipeline (fill-mask, ...) over stdin lines, JSON lines out.
    parity    max |diff| per head and output between the frameworks and transformers.

Errors print one line and exit non-zero; ``--verbose`` shows the traceback.
Quiet by default: ``-v`` / ``-q`` set how loud tribert and the libraries it drives are (tribert.verbosity).
This package is the top layer: the only one that imports every backend.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
from typing import Callable, Sequence

from . import __version__
from .stream import EXIT_STREAM, discard_stdout
from .verbosity import configure as configure_verbosity

__all__ = ["main"]


def _framework_env() -> dict[str, dict[str, object]]:
    """Version and visible devices of torch, tensorflow and jax (each imported only here)."""
    info: dict[str, dict[str, object]] = {}

    def probe(name: str, module: str, devices: Callable[[object], list[str]]) -> None:
        try:
            mod = importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 - a broken install is reported, not raised
            info[name] = {"installed": False, "error": f"{type(exc).__name__}: {exc}"}
            return
        entry: dict[str, object] = {"installed": True, "version": getattr(mod, "__version__", "?")}
        try:
            entry["devices"] = devices(mod)
        except Exception as exc:  # noqa: BLE001
            entry["devices"] = [f"unavailable ({exc})"]
        info[name] = entry

    def torch_devices(torch) -> list[str]:
        found = ["cpu"]
        if torch.cuda.is_available():
            found += [f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(torch.cuda.device_count())]
        return found

    def tf_devices(tf) -> list[str]:
        return [d.name for d in tf.config.list_logical_devices()]

    def jax_devices(jax) -> list[str]:
        return [f"{d.platform}:{d.id}" for d in jax.devices()]

    probe("torch", "torch", torch_devices)
    probe("tensorflow", "tensorflow", tf_devices)
    probe("jax", "jax", jax_devices)
    for extra in ("keras", "tensorflow_text", "flax", "optax", "transformers", "tokenizers", "safetensors", "numpy"):
        try:
            info[extra] = {"installed": True, "version": importlib.import_module(extra).__version__}
        except Exception:  # noqa: BLE001
            info[extra] = {"installed": False}
    return info


def _cmd_env(args: argparse.Namespace) -> int:
    report = {"tribert": __version__, "python": platform.python_version(), "platform": platform.platform(),
              "frameworks": _framework_env()}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"tribert {report['tribert']}  python {report['python']}  {report['platform']}")
    for name, entry in report["frameworks"].items():
        if entry.get("installed"):
            devices = entry.get("devices")
            suffix = f"  devices: {', '.join(devices)}" if devices else ""
            print(f"  {name:<16} {entry['version']}{suffix}")
        else:
            print(f"  {name:<16} not installed")
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from .convert import convert

    result = convert(args.src, args.to, args.out, head=args.head, dtype=args.dtype, config_path=args.config,
                     drop_unused=args.drop_unused, overwrite=args.overwrite, force=args.force, max_shard_size=args.max_shard_size,
                     revision=args.revision, local_files_only=args.local_files_only, tokenizer_ops=args.tokenizer_ops)
    print(result.summary())
    return 0


def _usage_error(args: argparse.Namespace, exc: Exception) -> int:
    """The command cannot start (a bad argument, a device the framework does not see): one line, exit 2."""
    if args.verbose:
        raise exc
    print(f"tribert {args.command}: error: {' '.join(str(exc).split())}", file=sys.stderr)
    return 2


def _cmd_run(args: argparse.Namespace) -> int:
    from bert_core.errors import DeviceError
    from bert_pipelines import PipelineError, task_name

    from .run import LineError, check_streams, load_pipeline, run_stream

    try:
        if args.batch_size < 1:
            raise PipelineError(f"--batch-size must be at least 1, got {args.batch_size}")
        task = task_name(args.task)
        check_streams(sys.stdin, sys.stdout)  # before the model loads
        pipe = load_pipeline(task, args.model, framework=args.framework, device=args.device, dtype=args.dtype,
                             batch_size=args.batch_size)  # fmt: skip
        return run_stream(pipe, task, sys.stdin, sys.stdout, sys.stderr, top_k=args.top_k, batch_size=args.batch_size)
    except (DeviceError, LineError, PipelineError) as exc:
        return _usage_error(args, exc)


def _cmd_parity(args: argparse.Namespace) -> int:
    from bert_core.errors import DeviceError

    from .parity import format_table, parity_table, rows_as_dicts

    frameworks = tuple(f.strip() for f in args.frameworks.split(",") if f.strip())
    heads = tuple(h.strip() for h in args.heads.split(",")) if args.heads else None
    reference = None if args.reference == "none" else args.reference
    heads = None if heads == ("all",) else heads
    try:
        rows = parity_table(args.model, frameworks, heads, dtype=args.dtype, device=args.device, reference=reference,
                            outputs=args.outputs)  # fmt: skip
    except DeviceError as exc:
        return _usage_error(args, exc)
    if args.json:
        print(json.dumps({"model": args.model, "dtype": args.dtype, "device": args.device, "rows": rows_as_dicts(rows),
                          "ok": all(r.ok for r in rows)}, indent=1))  # fmt: skip
    else:
        print(format_table(rows))
    return 0 if all(r.ok for r in rows) else 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tribert", description="One BERT, three frameworks.")
    _verbosity_flags(parser, default=0)
    parser.add_argument("--version", action="version", version=f"tribert {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    env = sub.add_parser("env", help="print versions and devices of torch, tensorflow and jax")
    env.add_argument("--json", action="store_true", help="print JSON")
    env.set_defaults(func=_cmd_env)

    from bert_core.heads import HEADS

    from .convert import TARGET_FORMATS

    conv = sub.add_parser("convert", help="convert a checkpoint between formats (via canonical safetensors)")
    conv.add_argument("src", help="directory, hub repo id, weight file (.safetensors/.bin/.h5/.msgpack) or TF1 prefix")
    conv.add_argument("--to", required=True, choices=sorted(TARGET_FORMATS),
                      help="target format; savedmodel, jax-export and torch-export are serving artifacts (docs/serving.md)")
    conv.add_argument("--out", required=True, help="output directory (written atomically)")
    conv.add_argument("--head", choices=sorted(HEADS), help="head to convert (default: from config.architectures)")
    conv.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], help="cast floating tensors")
    conv.add_argument("--config", help="config.json / bert_config.json when none sits next to the weights")
    conv.add_argument("--drop-unused", action="store_true", help="drop tensors the head does not use")
    conv.add_argument("--overwrite", action="store_true", help="replace an existing tribert output directory (atomically)")
    conv.add_argument("--force", action="store_true", help="with --overwrite: replace --out even if it is not a tribert output")
    conv.add_argument("--max-shard-size", default="5GB", help="shard safetensors above this size (default 5GB)")
    conv.add_argument("--revision", help="hub revision")
    conv.add_argument("--local-files-only", action="store_true", help="never contact the hub")
    conv.add_argument("--tokenizer-ops", choices=["text", "core"],
                      help="--to savedmodel: the in-graph tokenizer's ops: text (tensorflow-text, default) or core "
                           "(core TensorFlow only: loads without tensorflow-text)")
    conv.set_defaults(func=_cmd_convert)

    from bert_pipelines import TASKS

    from .run import FRAMEWORKS

    run = sub.add_parser("run", help="run a pipeline on stdin lines, one JSON result per line")
    run.add_argument("--task", required=True, help=f"one of {', '.join(TASKS)} (aliases: sentiment-analysis, ner)")
    run.add_argument("--model", required=True, help="model directory or hub repo id")
    run.add_argument("--framework", default="torch", choices=sorted(FRAMEWORKS), help="backend (default torch)")
    run.add_argument("--device", help="cpu, gpu, or a device index such as 0")
    run.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], help="compute dtype")
    run.add_argument("--top-k", type=int, help="results per input (fill-mask, text-classification, question-answering)")
    run.add_argument("--batch-size", type=int, default=8, help="rows per forward call")
    run.set_defaults(func=_cmd_run)

    par = sub.add_parser("parity", help="max |diff| per head and output between frameworks and transformers")
    par.add_argument("model", help="model directory or hub repo id (heads it lacks get seeded random weights)")
    par.add_argument("--frameworks", default="torch,tf,flax", help="comma-separated subset of torch,tf,flax")
    par.add_argument("--heads", help=f"comma-separated heads (default all: {', '.join(HEADS)})")
    par.add_argument("--outputs", default="logits", choices=["logits", "all"], help="the heads' main outputs, or also every hidden state and attention map")
    par.add_argument("--device", default="cpu", help="cpu, gpu or tpu (where the framework sees one)")
    par.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    par.add_argument("--reference", default="transformers", choices=["transformers", "none"], help="also compare against transformers")
    par.add_argument("--json", action="store_true", help="every row as JSON")
    par.set_defaults(func=_cmd_parity)
    for child in sub.choices.values():  # -v / -q also after the subcommand (`tribert parity DIR -v`)
        _verbosity_flags(child, default=argparse.SUPPRESS)
    return parser


def _verbosity_flags(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument("-v", "--verbose", action="count", default=default,
                        help="show transformers' / the hub's warnings and progress bars and tribert's info (-vv: debug); "
                             "tracebacks on errors")  # fmt: skip
    parser.add_argument("-q", "--quiet", action="store_true", default=default if default is argparse.SUPPRESS else False,
                        help="errors only")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tribert`` console script; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    # Quiet by default: the reference libraries' bars and advice are not the command's output.
    configure_verbosity(args.verbose, args.quiet)
    try:
        status = args.func(args)
        if sys.stdout is not None:  # started with stdout closed: nothing to flush
            sys.stdout.flush()  # a reader gone early (`| head -1`) is found here, not at interpreter exit
        return status
    except BrokenPipeError:
        # Nobody reads the output any more: that is the reader's choice, not an error to print.
        discard_stdout(sys.stdout)
        return EXIT_STREAM
    except (ValueError, OSError, ImportError) as exc:
        if args.verbose:
            raise
        # One line, whole: multi-line messages list every key, so fold them rather than cut them.
        message = " ".join(part.strip() for part in str(exc).splitlines()) or type(exc).__name__
        print(f"tribert {args.command}: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
