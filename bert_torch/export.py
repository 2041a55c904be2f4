"""``tribert convert --to torch-export``: the forward pass as a ``torch.export`` program (``model.pt2``).

The program holds its weights and runs with torch alone (no tribert): ::

    program = torch.export.load("model.pt2").module()
    outputs = program(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)

Batch and sequence are dynamic (``torch.export.Dim``: ``batch >= 1``,
``1 <= seq <= max_position_embeddings``, and ``choices`` for multiple choice); inputs are
int64 (torch's index dtype); outputs are a dict of the head's fields. The padded path is the
one traced: unpadding reads the mask on the host, which an exported program cannot, so the
model leaves it off while ``torch.compiler.is_exporting()``.

torch.export rather than ONNX: it needs nothing beyond torch (the ``onnx`` and ``onnxruntime``
packages are extra installs, and torch's ONNX exporter itself goes through ``torch.export``),
keeps torch's own kernels (SDPA), so the reloaded program equals the model exactly, and the
``.pt2`` feeds AOTInductor (``torch._inductor.aoti_compile_and_package``) for a C++ runtime.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
from torch import nn

from bert_core.config import BertConfig
from bert_core.errors import CheckpointError
from bert_core.heads import get_head
from conversion.export_card import INPUT_NAMES, input_dims, write_export_card

from . import models
from .loading import _to_torch, from_pretrained

__all__ = ["export_torch", "write_torch_export", "CONVERT_WRITERS", "TORCH_EXPORT_FILE"]

TORCH_EXPORT_FILE = "model.pt2"

_LOAD = textwrap.dedent("""\
    import torch

    program = torch.export.load("model.pt2").module()
    with torch.no_grad():
        outputs = program(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
""")
_REFUSALS = ("A shape outside the limits is refused by the program's input guards: an `AssertionError` such as "
             "`Guard failed: input_ids.size()[1] <= N`. An id outside its table raises torch's `IndexError: "
             "index out of range in self` (on CPU; a device-side assert on CUDA).")


class _Serving(nn.Module):
    """The model over the three id inputs, returning ``{field: tensor}`` for the head's output fields."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.fields = model.head.logits

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                         return_dict=True)
        return {name: getattr(out, name) for name in self.fields}


def export_torch(model: nn.Module) -> torch.export.ExportedProgram:
    """``torch.export.export`` of ``model`` (in eval mode) over int64 ids with dynamic batch and sequence."""
    model.eval()
    dims = input_dims(model.head.name)
    limits = {"batch": {}, "choices": {}, "seq": {"max": model.config.max_position_embeddings}}
    dynamic = {i: torch.export.Dim(name, min=1, **limits[name]) for i, name in enumerate(dims)}
    # No example dim of size 1 (torch.export specialises a dim whose example size is 0 or 1), and one
    # tensor per input: inputs that are one tensor object are traced as one input.
    shape = (2,) * (len(dims) - 1) + (3,)
    example = {name: torch.ones(shape, dtype=torch.int64) for name in INPUT_NAMES}
    with torch.no_grad():
        return torch.export.export(_Serving(model), (), example,
                                   dynamic_shapes={name: dynamic for name in INPUT_NAMES})


def write_torch_export(tensors: Mapping[str, np.ndarray], config: BertConfig, head: str,
                       out_dir: str | os.PathLike) -> list[Path]:
    """``tribert convert --to torch-export``: ``model.pt2`` and the card in ``out_dir``, in the tensors' dtype.

    Raises:
        CheckpointError: a weight of ``head`` missing from ``tensors``.
    """
    out_dir = Path(out_dir)
    state = {k: _to_torch(np.asarray(v)) for k, v in tensors.items()}
    dtype = next((t.dtype for t in state.values() if t.is_floating_point()), torch.float32)  # the checkpoint's
    model, info = from_pretrained(getattr(models, get_head(head).class_name), None, config=config, state_dict=state,
                                  dtype=dtype, output_loading_info=True)
    if info["missing_keys"]:
        raise CheckpointError(f"--to torch-export needs every weight of {head!r}; the checkpoint lacks "
                              f"{info['missing_keys']}")
    program = export_torch(model)
    torch.export.save(program, out_dir / TORCH_EXPORT_FILE)
    outputs = dict(zip(get_head(head).logits, _output_shapes(program, input_dims(head))))
    card = write_export_card(out_dir, target="torch-export", files=[TORCH_EXPORT_FILE], config=config, head=head,
                             input_dtype="int64", outputs=outputs, runtime="torch", load=_LOAD, refusals=_REFUSALS)
    return [out_dir / TORCH_EXPORT_FILE, *card]


def _output_shapes(program: torch.export.ExportedProgram, dims: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The shapes of the program's outputs, in output order, dynamic sizes by the names of ``dims``."""
    nodes = {n.name: n for n in program.graph.nodes}
    first_input = nodes[program.graph_signature.user_inputs[0]].meta["val"]
    names = {str(size): name for size, name in zip(first_input.shape, dims)}
    return [tuple(names.get(str(d), str(d)) for d in nodes[spec.arg.name].meta["val"].shape)
            for spec in program.graph_signature.output_specs]


#: The ``tribert convert --to`` targets this backend writes (see ``bert_tf.export.CONVERT_WRITERS``).
CONVERT_WRITERS = {"torch-export": write_torch_export}
