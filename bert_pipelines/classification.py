"""text-classification and token-classification (with entity aggregation), as `transformers` does them."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Feature, PipelineError, Task, softmax

AGGREGATIONS = ("none", "simple", "first", "average", "max")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _label(config: Any, index: int) -> str:
    return config.id2label.get(index, config.id2label.get(str(index), f"LABEL_{index}"))


class TextClassification(Task):
    """``[{label, score}]`` per input; ``top_k=None`` gives every label, best first."""

    name = "text-classification"
    outputs = ("logits",)
    token_level = False

    def parameters(self, top_k: Any = "legacy", function_to_apply: str | None = None) -> dict[str, Any]:
        """Without ``top_k`` each input gives one ``{label, score}`` dict, as in `transformers`."""
        legacy = top_k == "legacy"
        top_k = 1 if legacy else top_k
        if function_to_apply is None:
            multi = self.config.problem_type == "multi_label_classification" or self.config.num_labels == 1
            function_to_apply = "sigmoid" if multi else "softmax"
        if function_to_apply not in ("softmax", "sigmoid", "none"):
            raise PipelineError(f"text-classification: function_to_apply must be 'softmax', 'sigmoid' or 'none', got {function_to_apply!r}")
        if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
            raise PipelineError(f"text-classification: top_k must be a positive int or None, got {top_k!r}")
        return {"top_k": top_k, "function": function_to_apply, "legacy": legacy}

    def normalize_inputs(self, inputs: Any) -> tuple[list[Any], bool]:
        if isinstance(inputs, dict):  # {"text": ..., "text_pair": ...}
            return [inputs], False
        if isinstance(inputs, (list, tuple)) and inputs and all(isinstance(x, dict) for x in inputs):
            return list(inputs), True
        return super().normalize_inputs(inputs)

    def preprocess(self, index: int, item: Any, params: dict[str, Any]) -> list[Feature]:
        if isinstance(item, dict):
            if "text" not in item:
                raise PipelineError(f"text-classification: input {index} is a dict without 'text'")
            encoding = self.tokenizer(item["text"], item.get("text_pair"), truncation=True, verbose=False)
        else:
            encoding = self.tokenizer(item, truncation=True, verbose=False)
        return [Feature(index, dict(encoding))]

    def postprocess(self, item: Any, features: list[Feature], params: dict[str, Any]) -> Any:
        logits = features[0].outputs["logits"].astype(np.float32)
        scores = {"softmax": softmax, "sigmoid": _sigmoid, "none": lambda x: x}[params["function"]](logits)
        ranked = [{"label": _label(self.config, i), "score": float(scores[i])} for i in np.argsort(-scores, kind="stable")]
        if params["legacy"]:
            return ranked[0]
        return ranked if params["top_k"] is None else ranked[: params["top_k"]]


def _tag(entity: str) -> tuple[str, str]:
    """``("B"|"I", tag)``; a label without a B-/I- prefix counts as inside."""
    if entity.startswith(("B-", "I-")):
        return entity[0], entity[2:]
    return "I", entity


class TokenClassification(Task):
    """Entities with ``entity`` (or ``entity_group``), ``score``, ``word``, ``start``, ``end``.

    ``aggregation_strategy``: "none" (one result per token), "simple" (merge
    B-/I- runs), or "first" / "average" / "max" (first merge sub-word pieces
    into words, taking the first piece's, the mean, or the best piece's
    scores). Needs the fast tokenizer's offsets.
    """

    name = "token-classification"
    outputs = ("logits",)

    def parameters(self, aggregation_strategy: str = "none", ignore_labels: list[str] | None = None) -> dict[str, Any]:
        strategy = str(aggregation_strategy).lower()
        if strategy not in AGGREGATIONS:
            raise PipelineError(f"token-classification: aggregation_strategy must be one of {', '.join(AGGREGATIONS)}, got {aggregation_strategy!r}")
        if not getattr(self.tokenizer, "is_fast", False):
            raise PipelineError("token-classification needs the fast tokenizer (offsets)")
        return {"strategy": strategy, "ignore": ["O"] if ignore_labels is None else list(ignore_labels)}

    def preprocess(self, index: int, item: str, params: dict[str, Any]) -> list[Feature]:
        encoding = self.tokenizer(item, truncation=True, return_offsets_mapping=True, return_special_tokens_mask=True, verbose=False)
        offsets = encoding.pop("offset_mapping")
        special = encoding.pop("special_tokens_mask")
        return [Feature(index, dict(encoding), {"offsets": offsets, "special": special})]

    def postprocess(self, item: str, features: list[Feature], params: dict[str, Any]) -> list[dict[str, Any]]:
        feature = features[0]
        scores = softmax(feature.outputs["logits"].astype(np.float32))
        pieces = []
        for index, (token_id, (start, end), special) in enumerate(zip(feature.inputs["input_ids"], feature.extra["offsets"], feature.extra["special"])):
            if special:
                continue
            word = self.tokenizer.convert_ids_to_tokens(int(token_id))
            is_subword = len(word) != len(item[start:end])
            if token_id == self.tokenizer.unk_token_id:
                word, is_subword = item[start:end], False
            pieces.append({"word": word, "scores": scores[index], "start": start, "end": end, "index": index, "is_subword": is_subword})
        strategy = params["strategy"]
        if strategy in ("none", "simple"):
            entities = [self._token_entity(p) for p in pieces]
        else:
            entities = [self._word_entity(group, strategy) for group in self._words(pieces)]
        if strategy == "none":
            return [e for e in entities if e["entity"] not in params["ignore"]]
        return [g for g in self._group(entities) if g["entity_group"] not in params["ignore"]]

    def _token_entity(self, piece: dict[str, Any]) -> dict[str, Any]:
        best = int(piece["scores"].argmax())
        return {"entity": _label(self.config, best), "score": float(piece["scores"][best]), "index": piece["index"],
                "word": piece["word"], "start": piece["start"], "end": piece["end"]}  # fmt: skip

    @staticmethod
    def _words(pieces: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        words: list[list[dict[str, Any]]] = []
        for piece in pieces:
            if words and piece["is_subword"]:
                words[-1].append(piece)
            else:
                words.append([piece])
        return words

    def _word_entity(self, group: list[dict[str, Any]], strategy: str) -> dict[str, Any]:
        if strategy == "first":
            scores = group[0]["scores"]
        elif strategy == "max":
            scores = max(group, key=lambda p: p["scores"].max())["scores"]
        else:
            scores = np.mean([p["scores"] for p in group], axis=0)
        best = int(scores.argmax())
        return {"entity": _label(self.config, best), "score": float(scores[best]),
                "word": self.tokenizer.convert_tokens_to_string([p["word"] for p in group]),
                "start": group[0]["start"], "end": group[-1]["end"]}  # fmt: skip

    def _group(self, entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Merge consecutive entities of one tag; a B- starts a new group."""
        groups: list[list[dict[str, Any]]] = []
        for entity in entities:
            bi, tag = _tag(entity["entity"])
            if groups and bi != "B" and _tag(groups[-1][-1]["entity"])[1] == tag:
                groups[-1].append(entity)
            else:
                groups.append([entity])
        return [
            {"entity_group": _tag(g[0]["entity"])[1], "score": float(np.mean([e["score"] for e in g])),
             "word": self.tokenizer.convert_tokens_to_string([e["word"] for e in g]),
             "start": g[0]["start"], "end": g[-1]["end"]}  # fmt: skip
            for g in groups
        ]
