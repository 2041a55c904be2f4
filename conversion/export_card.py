"""The card beside a portable artifact (``tribert convert --to jax-export|torch-export``).

A backend's exporter hands over what its artifact takes and returns; this module
writes it twice, for programs (``export.json``) and for people (``README.md``):
the files, the input names, dtype and symbolic shape, the outputs, the limits and
the loading snippet. One writer, so the two artifacts describe themselves alike.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

from bert_core.config import BertConfig
from bert_core.heads import get_head

__all__ = ["EXPORT_CARD", "EXPORT_README", "INPUT_NAMES", "input_dims", "write_export_card"]

EXPORT_CARD = "export.json"
EXPORT_README = "README.md"
#: The inputs every exported artifact takes, in this order (``transformers`` 4.x's serving signature).
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


def input_dims(head: str) -> tuple[str, ...]:
    """The symbolic dims of each input: ``("batch", "seq")``, or ``("batch", "choices", "seq")`` for multiple choice."""
    return ("batch", "choices", "seq") if get_head(head).choices else ("batch", "seq")


def write_export_card(out_dir: str | Path, *, target: str, files: Sequence[str], config: BertConfig, head: str,
                      input_dtype: str, outputs: Mapping[str, Sequence[str]], runtime: str, load: str,
                      refusals: str) -> list[Path]:
    """Write ``export.json`` and ``README.md`` into ``out_dir``; returns both paths.

    Args:
        target: the ``--to`` name (``jax-export``).
        files: the artifact's own files, relative to ``out_dir``.
        input_dtype: the dtype of the three inputs (``int32``).
        outputs: output name -> its symbolic shape (``("batch", "seq", 384)``).
        runtime: what loading needs (``jax and jaxlib``).
        load: a Python snippet that loads the artifact from the current directory and runs it on
            ``input_ids``, ``attention_mask``, ``token_type_ids``.
        refusals: how the artifact or its loader reports a shape it does not support.
    """
    out_dir = Path(out_dir)
    dims = input_dims(head)
    card = {
        "target": target,
        "files": list(files),
        "runtime": runtime,
        "head": head,
        "inputs": {name: {"dtype": input_dtype, "shape": list(dims)} for name in INPUT_NAMES},
        "outputs": {name: list(shape) for name, shape in outputs.items()},
        "limits": {"batch": [1, None], "seq": [1, config.max_position_embeddings],
                   "input_ids": [0, config.vocab_size - 1], "token_type_ids": [0, config.type_vocab_size - 1],
                   "attention_mask": [0, 1]},
        "load": load,
    }
    shape = "(" + ", ".join(dims) + ")"
    lines = [
        f"# {target}: {get_head(head).class_name}",
        "",
        f"Written by `tribert convert --to {target}`. Loading needs {runtime} only (no tribert).",
        "",
        "```python",
        load.rstrip(),
        "```",
        "",
        f"Inputs, all `{input_dtype}` of shape `{shape}`: "
        + ", ".join(f"`{n}`" for n in INPUT_NAMES) + ".",
        "",
        "Outputs: " + ", ".join(f"`{n}` `({', '.join(map(str, s))})`" for n, s in outputs.items()) + ".",
        "",
        f"Limits: `seq` from 1 to {config.max_position_embeddings} (`max_position_embeddings`), `batch` from 1; "
        f"`input_ids` below {config.vocab_size}, `token_type_ids` below {config.type_vocab_size}, "
        "`attention_mask` 1 for real tokens and 0 for padding.",
        "",
        refusals,
        "",
    ]
    card_path, readme_path = out_dir / EXPORT_CARD, out_dir / EXPORT_README
    card_path.write_text(json.dumps(card, indent=1) + "\n", encoding="utf-8")
    readme_path.write_text("\n".join(lines), encoding="utf-8")
    return [card_path, readme_path]
