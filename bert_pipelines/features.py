"""feature-extraction (token vectors) and sentence-embeddings (one vector per input)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .base import Feature, PipelineError, Task

# The order sentence-transformers concatenates them in.
POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len")


class FeatureExtraction(Task):
    """The last hidden state of every token, shaped ``[1][seq][hidden]`` per input like `transformers`."""

    name = "feature-extraction"
    outputs = ("last_hidden_state",)

    def parameters(self, truncation: bool = True) -> dict[str, Any]:
        return {"truncation": truncation}

    def preprocess(self, index: int, item: str, params: dict[str, Any]) -> list[Feature]:
        return [Feature(index, dict(self.tokenizer(item, truncation=params["truncation"], verbose=False)))]

    def postprocess(self, item: str, features: list[Feature], params: dict[str, Any]) -> Any:
        return features[0].outputs["last_hidden_state"][None].tolist()


def read_sentence_transformers_settings(model_dir: Any) -> dict[str, Any]:
    """Pooling modes, normalisation and max_seq_length from a sentence-transformers checkpoint.

    Reads ``modules.json``, the Pooling module's ``config.json`` and
    ``sentence_bert_config.json``; a plain BERT directory gives mean pooling,
    no normalisation and no length limit beyond the tokenizer's.
    """
    settings: dict[str, Any] = {"modes": ["mean"], "normalize": False, "max_seq_length": None}
    if model_dir is None or not Path(model_dir).is_dir():
        return settings
    root = Path(model_dir)

    def load(path: Path) -> Any:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise PipelineError(f"{path} is not valid JSON: {err}") from None

    if (root / "sentence_bert_config.json").is_file():
        settings["max_seq_length"] = load(root / "sentence_bert_config.json").get("max_seq_length")
    if not (root / "modules.json").is_file():
        return settings
    for module in load(root / "modules.json"):
        kind = module.get("type", "")
        if kind.endswith("Pooling"):
            pooling = load(root / module["path"] / "config.json")
            modes = [m for m in POOLING_MODES if pooling.get(f"pooling_mode_{m}_token" if m == "cls" else f"pooling_mode_{m}_tokens")]
            if not modes:
                raise PipelineError(f"{root / module['path'] / 'config.json'}: no supported pooling mode ({', '.join(POOLING_MODES)}) is on")
            settings["modes"] = modes
        elif kind.endswith("Normalize"):
            settings["normalize"] = True
    return settings


def pool(hidden: np.ndarray, mask: np.ndarray, modes: list[str]) -> np.ndarray:
    """Concatenate the requested poolings of ``hidden`` (seq, dim) over the real tokens in ``mask``."""
    hidden = hidden.astype(np.float32)
    weights = mask.astype(np.float32)[:, None]
    count = max(float(weights.sum()), 1e-9)
    pieces = []
    for mode in modes:
        if mode == "cls":
            pieces.append(hidden[0])
        elif mode == "max":
            pieces.append(np.where(weights > 0, hidden, -1e9).max(axis=0))
        else:
            total = (hidden * weights).sum(axis=0)
            pieces.append(total / (count if mode == "mean" else np.sqrt(count)))
    return np.concatenate(pieces).astype(np.float32)


class SentenceEmbeddings(Task):
    """One vector per input, pooled and normalised as the checkpoint's sentence-transformers files say."""

    name = "sentence-embeddings"
    outputs = ("last_hidden_state",)

    def __init__(self, tokenizer: Any, config: Any, model_dir: Any = None):
        super().__init__(tokenizer, config, model_dir)
        self.settings = read_sentence_transformers_settings(model_dir)

    def parameters(self, normalize: bool | None = None) -> dict[str, Any]:
        return {"normalize": self.settings["normalize"] if normalize is None else normalize}

    def preprocess(self, index: int, item: str, params: dict[str, Any]) -> list[Feature]:
        limit = self.settings["max_seq_length"]
        encoding = self.tokenizer(item, truncation=True, max_length=limit, verbose=False) if limit else self.tokenizer(item, truncation=True, verbose=False)
        return [Feature(index, dict(encoding))]

    def combine(self, results: list[np.ndarray], batched: bool) -> np.ndarray:
        """(n, dim) for a list of inputs, (dim,) for one, like sentence-transformers' ``encode``."""
        return np.stack(results) if batched else results[0]

    def postprocess(self, item: str, features: list[Feature], params: dict[str, Any]) -> np.ndarray:
        feature = features[0]
        vector = pool(feature.outputs["last_hidden_state"], np.asarray(feature.inputs["attention_mask"]), self.settings["modes"])
        if params["normalize"]:
            vector = vector / max(float(np.linalg.norm(vector)), 1e-12)
        return vector
