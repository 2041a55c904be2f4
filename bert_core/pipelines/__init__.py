"""Framework-neutral pipelines: each backend's ``pipeline()`` supplies only the forward pass.

Tasks: fill-mask, feature-extraction, sentence-embeddings,
text-classification, token-classification, question-answering.
"""

from __future__ import annotations

from typing import Any

from .base import Feature, Forward, Pipeline, PipelineError, Task, bucket_length, softmax
from .classification import TextClassification, TokenClassification
from .features import FeatureExtraction, SentenceEmbeddings, pool, read_sentence_transformers_settings
from .fill_mask import FillMask
from .question_answering import QuestionAnswering

__all__ = [
    "TASKS",
    "TASK_HEADS",
    "Pipeline",
    "PipelineError",
    "Task",
    "Feature",
    "bucket_length",
    "softmax",
    "pool",
    "read_sentence_transformers_settings",
    "build_pipeline",
]

TASKS: dict[str, type[Task]] = {
    task.name: task
    for task in (FillMask, FeatureExtraction, SentenceEmbeddings, TextClassification, TokenClassification, QuestionAnswering)
}
# The bert_core.heads name of the model each task runs.
TASK_HEADS = {
    "fill-mask": "masked-lm",
    "feature-extraction": "base",
    "sentence-embeddings": "base",
    "text-classification": "sequence-classification",
    "token-classification": "token-classification",
    "question-answering": "question-answering",
}
_ALIASES = {"sentiment-analysis": "text-classification", "ner": "token-classification", "sentence-similarity": "sentence-embeddings"}


def task_name(task: str) -> str:
    """Canonical task name (accepts transformers' aliases: sentiment-analysis, ner)."""
    name = _ALIASES.get(task, task)
    if name not in TASKS:
        raise PipelineError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    return name


def build_pipeline(
    task: str, *, tokenizer: Any, config: Any, forward: Forward, model_dir: Any = None,
    batch_size: int = 8, bucket: bool = False, framework: str = "",
) -> Pipeline:  # fmt: skip
    """Assemble a :class:`Pipeline` from a tokenizer, a config and a backend's forward function."""
    name = task_name(task)
    return Pipeline(TASKS[name](tokenizer, config, model_dir), forward, batch_size=batch_size, bucket=bucket, framework=framework)
