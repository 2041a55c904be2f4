"""fill-mask: the most likely tokens for each ``[MASK]``, as `transformers` reports them."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Feature, PipelineError, Task, softmax


class FillMask(Task):
    """Results ``{score, token, token_str, sequence}``; a list per mask when there are several."""

    name = "fill-mask"
    outputs = ("logits",)

    def parameters(self, top_k: int = 5, targets: str | list[str] | None = None) -> dict[str, Any]:
        if not isinstance(top_k, int) or top_k < 1:
            raise PipelineError(f"fill-mask: top_k must be a positive int, got {top_k!r}")
        return {"top_k": top_k, "target_ids": None if targets is None else self._target_ids(targets)}

    def _target_ids(self, targets: str | list[str]) -> np.ndarray:
        """Vocabulary ids of ``targets``; a word outside the vocabulary maps to its first piece."""
        vocab = self.tokenizer.get_vocab()
        ids = []
        for target in [targets] if isinstance(targets, str) else targets:
            if target in vocab:
                ids.append(vocab[target])
                continue
            pieces = self.tokenizer(target, add_special_tokens=False, return_attention_mask=False, return_token_type_ids=False)["input_ids"]
            if not pieces:
                raise PipelineError(f"fill-mask: target {target!r} is not a token and tokenizes to nothing")
            ids.append(pieces[0])
        return np.array(sorted(set(ids)))

    def preprocess(self, index: int, item: str, params: dict[str, Any]) -> list[Feature]:
        encoding = self.tokenizer(item, truncation=True, verbose=False)
        if self.tokenizer.mask_token_id not in encoding["input_ids"]:
            raise PipelineError(f"fill-mask: no {self.tokenizer.mask_token} in input {index}: {item!r}")
        return [Feature(index, dict(encoding))]

    def postprocess(self, item: str, features: list[Feature], params: dict[str, Any]) -> Any:
        (feature,) = features
        input_ids = np.asarray(feature.inputs["input_ids"])
        masked = np.flatnonzero(input_ids == self.tokenizer.mask_token_id)
        probs = softmax(feature.outputs["logits"][masked].astype(np.float32))
        target_ids = params["target_ids"]
        if target_ids is not None:
            probs = probs[:, target_ids]
        top_k = min(params["top_k"], probs.shape[-1])
        single = len(masked) == 1
        result = []
        for row, position in zip(probs, masked):
            best = np.argsort(-row, kind="stable")[:top_k]
            predictions = []
            for choice in best:
                token = int(choice if target_ids is None else target_ids[choice])
                tokens = input_ids.copy()
                tokens[position] = token
                tokens = tokens[tokens != self.tokenizer.pad_token_id]
                # With several masks the other [MASK]s stay visible, as in transformers.
                predictions.append({
                    "score": float(row[choice]),
                    "token": token,
                    "token_str": self.tokenizer.decode([token]),
                    "sequence": self.tokenizer.decode(tokens.tolist(), skip_special_tokens=single),
                })  # fmt: skip
            result.append(predictions)
        return result[0] if single else result
