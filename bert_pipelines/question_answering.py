"""question-answering: extractive spans over long contexts in strided windows.

The span search is `transformers` 4.x's: softmax of start and end logits over
the context tokens (question and padding masked out, ``[CLS]`` kept for the
"no answer" score), the top products start x end with ``start <= end <
start + max_answer_len``, answers snapped to whole words, and the
probabilities of spans that give the same answer text added up.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Feature, PipelineError, Task


class QuestionAnswering(Task):
    """``{score, start, end, answer}`` per input (a list when ``top_k > 1``)."""

    name = "question-answering"
    outputs = ("start_logits", "end_logits")

    def parameters(
        self, top_k: int = 1, doc_stride: int = 128, max_answer_len: int = 15, max_seq_len: int | None = None,
        max_question_len: int = 64, handle_impossible_answer: bool = False, align_to_words: bool = True,
    ) -> dict[str, Any]:  # fmt: skip
        if max_seq_len is None:
            max_seq_len = min(self.tokenizer.model_max_length, 384)
        for name, value in (("top_k", top_k), ("max_answer_len", max_answer_len), ("max_seq_len", max_seq_len)):
            if not isinstance(value, int) or value < 1:
                raise PipelineError(f"question-answering: {name} must be a positive int, got {value!r}")
        if doc_stride >= max_seq_len:
            raise PipelineError(f"question-answering: doc_stride ({doc_stride}) must be smaller than max_seq_len ({max_seq_len})")
        if not getattr(self.tokenizer, "is_fast", False):
            raise PipelineError("question-answering needs the fast tokenizer (offsets)")
        return dict(top_k=top_k, doc_stride=doc_stride, max_answer_len=max_answer_len, max_seq_len=max_seq_len,
                    handle_impossible_answer=handle_impossible_answer, align_to_words=align_to_words)  # fmt: skip

    def normalize_inputs(self, inputs: Any) -> tuple[list[Any], bool]:
        def check(item: Any, index: int) -> dict[str, str]:
            if not isinstance(item, dict) or not isinstance(item.get("question"), str) or not isinstance(item.get("context"), str):
                raise PipelineError(f"question-answering: input {index} must be a dict with string 'question' and 'context'")
            if not item["question"].strip() or not item["context"].strip():
                raise PipelineError(f"question-answering: input {index} has an empty question or context")
            return item

        if isinstance(inputs, dict):
            return [check(inputs, 0)], False
        if isinstance(inputs, (list, tuple)):
            return [check(item, i) for i, item in enumerate(inputs)], True
        raise PipelineError(f"question-answering: expected {{'question': ..., 'context': ...}} or a list of them, got {type(inputs).__name__}")

    def preprocess(self, index: int, item: dict[str, str], params: dict[str, Any]) -> list[Feature]:
        encoding = self.tokenizer(
            item["question"], item["context"], truncation="only_second", max_length=params["max_seq_len"],
            stride=params["doc_stride"], return_overflowing_tokens=True, return_offsets_mapping=True, verbose=False,
        )  # fmt: skip
        features = []
        for window in range(len(encoding["input_ids"])):
            ids = encoding["input_ids"][window]
            # Only context tokens may be answers; [CLS] stays for the "no answer" score.
            p_mask = np.array([s != 1 for s in encoding.sequence_ids(window)])
            p_mask[np.asarray(ids) == self.tokenizer.cls_token_id] = False
            inputs = {k: encoding[k][window] for k in ("input_ids", "token_type_ids", "attention_mask")}
            features.append(Feature(index, inputs, {"p_mask": p_mask, "encoding": encoding.encodings[window]}))
        return features

    def postprocess(self, item: dict[str, str], features: list[Feature], params: dict[str, Any]) -> Any:
        answers, null_score = [], 1_000_000.0
        for feature in features:
            wanted = ~feature.extra["p_mask"] & (np.asarray(feature.inputs["attention_mask"]) == 1)
            start = _masked_softmax(feature.outputs["start_logits"], wanted)
            end = _masked_softmax(feature.outputs["end_logits"], wanted)
            if params["handle_impossible_answer"]:
                null_score = min(null_score, float(start[0] * end[0]))
            start[0] = end[0] = 0.0
            # Word alignment maps several token spans to one answer: look further, then merge.
            candidates = params["top_k"] * 2 + 10 if params["align_to_words"] else params["top_k"]
            for s, e, score in _best_spans(start, end, candidates, params["max_answer_len"], wanted):
                begin, finish = self._chars(feature.extra["encoding"], s, e, params["align_to_words"])
                text = item["context"][begin:finish]
                same = next((a for a in answers if a["answer"].lower() == text.lower()), None)
                if same is not None:  # the same answer text (any window) adds up its probability
                    same["score"] += score
                else:
                    answers.append({"score": score, "start": begin, "end": finish, "answer": text})
        if params["handle_impossible_answer"]:
            answers.append({"score": null_score, "start": 0, "end": 0, "answer": ""})
        answers = sorted(answers, key=lambda a: a["score"], reverse=True)[: params["top_k"]]
        return answers[0] if len(answers) == 1 else answers

    @staticmethod
    def _chars(encoding: Any, start: int, end: int, align_to_words: bool) -> tuple[int, int]:
        if align_to_words:
            try:
                first, last = encoding.token_to_word(start), encoding.token_to_word(end)
                return encoding.word_to_chars(first, sequence_index=1)[0], encoding.word_to_chars(last, sequence_index=1)[1]
            except Exception:  # a token without a word: fall back to the token's own span
                pass
        return encoding.offsets[start][0], encoding.offsets[end][1]


def _masked_softmax(logits: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    scores = np.where(wanted, logits.astype(np.float32), -10000.0)
    scores = np.exp(scores - scores.max())
    return scores / scores.sum()


def _best_spans(start: np.ndarray, end: np.ndarray, top_k: int, max_answer_len: int, wanted: np.ndarray) -> list[tuple[int, int, float]]:
    """The ``top_k`` spans by start x end probability with ``0 <= end - start < max_answer_len``."""
    outer = np.tril(np.triu(np.outer(start, end)), max_answer_len - 1)
    flat = outer.ravel()
    order = [int(np.argmax(flat))] if top_k == 1 else np.argsort(-flat, kind="stable")[:top_k]
    spans = []
    for index in order:
        s, e = np.unravel_index(index, outer.shape)
        if wanted[s] and wanted[e]:
            spans.append((int(s), int(e), float(outer[s, e])))
    return spans
