"""Match a checkpoint's keys to a model's keys, and report what happened.

Checkpoints in the wild vary: keys with or without the ``bert.`` prefix,
TF-era ``LayerNorm.gamma/beta``, ``embeddings.position_ids`` buffers, tied
decoder weights left out. :func:`match_state` works on names and shapes only
(canonical keys on both sides), so every backend loads through it and reports
the same way ``transformers`` users know: loaded, missing, unexpected,
mismatched, tied.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from bert_core.errors import CheckpointError, ShapeMismatchError

from .rules import BASE_MODEL_PREFIX, IGNORED_KEY_PATTERNS, LEGACY_LEAF_NAMES, TIED_KEYS

__all__ = ["LoadReport", "LoadingKeys", "match_state", "normalize_key"]


class LoadingKeys(list):
    """The key collections of ``output_loading_info``: a list (what ``transformers`` 4.x returned) that also
    answers the set operations of 5.x (which returns sets).

    ``info["missing_keys"][0]``, ``== []`` and ``len()`` work as on 4.x's list; ``- {...}``, ``& {...}``,
    ``| {...}``, ``^ {...}``, ``issubset`` and ``== set()`` work as on 5.x's set (comparing with a set or
    frozenset compares contents, order and repeats ignored).
    """

    def _other(self, other) -> set | None:
        return set(other) if isinstance(other, (set, frozenset, list, tuple)) else None

    def __eq__(self, other) -> bool:
        if isinstance(other, (set, frozenset)):
            return set(self) == other
        return list.__eq__(self, other)

    def __ne__(self, other) -> bool:
        return not self == other

    __hash__ = None  # mutable, as list

    def __sub__(self, other):
        return set(self) - set(other) if self._other(other) is not None else NotImplemented

    def __rsub__(self, other):
        return set(other) - set(self) if self._other(other) is not None else NotImplemented

    def __and__(self, other):
        return set(self) & set(other) if self._other(other) is not None else NotImplemented

    def __or__(self, other):
        return set(self) | set(other) if self._other(other) is not None else NotImplemented

    def __xor__(self, other):
        return set(self) ^ set(other) if self._other(other) is not None else NotImplemented

    __rand__, __ror__, __rxor__ = __and__, __or__, __xor__

    def issubset(self, other) -> bool:
        return set(self).issubset(other)

    def issuperset(self, other) -> bool:
        return set(self).issuperset(other)

    def isdisjoint(self, other) -> bool:
        return set(self).isdisjoint(other)

    def difference(self, *others) -> set:
        return set(self).difference(*others)

    def intersection(self, *others) -> set:
        return set(self).intersection(*others)

    def union(self, *others) -> set:
        return set(self).union(*others)


@dataclass
class LoadReport:
    """What loading a checkpoint into a model did.

    Attributes:
        assignments: model key -> checkpoint key it was filled from.
        missing_keys: model keys no checkpoint key filled (newly initialised).
        unexpected_keys: checkpoint keys the model has no place for (unused).
        mismatched_keys: ``(key, checkpoint_shape, model_shape)`` left initialised
            because ``ignore_mismatched_sizes=True``.
        tied_keys: model keys filled by tying (decoder <- word embeddings).
        ignored_keys: checkpoint buffers skipped on purpose (``position_ids``).
        source: the file(s) read, for messages.
    """

    assignments: dict[str, str] = field(default_factory=dict)
    missing_keys: list[str] = field(default_factory=list)
    unexpected_keys: list[str] = field(default_factory=list)
    mismatched_keys: list[tuple[str, tuple, tuple]] = field(default_factory=list)
    tied_keys: list[str] = field(default_factory=list)
    ignored_keys: list[str] = field(default_factory=list)
    source: str = ""

    @property
    def loaded_keys(self) -> list[str]:
        return list(self.assignments)

    def as_dict(self) -> dict[str, list]:
        """The ``output_loading_info=True`` dict of ``transformers``, plus tied keys.

        Key collections are :class:`LoadingKeys`: 4.x's lists that also take 5.x's set operations.
        """
        return {
            "missing_keys": LoadingKeys(self.missing_keys),
            "unexpected_keys": LoadingKeys(self.unexpected_keys),
            "mismatched_keys": LoadingKeys((k, tuple(a), tuple(b)) for k, a, b in self.mismatched_keys),
            "tied_keys": LoadingKeys(self.tied_keys),
            "error_msgs": [],
        }

    def summary(self, model_name: str = "the model") -> str:
        """A human-readable account, as ``transformers`` logs it on load."""
        lines = [f"Loaded {len(self.assignments)} tensors into {model_name} from {self.source or 'the checkpoint'}."]
        if self.tied_keys:
            lines.append(f"Tied (shared with another weight): {self.tied_keys}")
        if self.unexpected_keys:
            lines.append(
                f"Some weights of the checkpoint were not used when initializing {model_name}: "
                f"{self.unexpected_keys}. This is expected if the checkpoint was trained with another "
                f"head or task (e.g. a pre-training checkpoint loaded into a classifier)."
            )
        if self.missing_keys:
            lines.append(
                f"Some weights of {model_name} were not initialized from the checkpoint and are newly "
                f"initialized: {self.missing_keys}. You should probably TRAIN this model on a downstream "
                f"task to be able to use it for predictions and inference."
            )
        if self.mismatched_keys:
            details = ", ".join(f"{k}: checkpoint {tuple(a)} vs model {tuple(b)}" for k, a, b in self.mismatched_keys)
            lines.append(f"Some weights were newly initialized because their shapes did not match: {details}")
        return "\n".join(lines)


def normalize_key(key: str) -> str:
    """Rewrite legacy leaf names (``LayerNorm.gamma`` -> ``LayerNorm.weight``)."""
    module_path, dot, leaf = key.rpartition(".")
    if dot and module_path.rpartition(".")[2] == "LayerNorm" and leaf in LEGACY_LEAF_NAMES:
        return f"{module_path}.{LEGACY_LEAF_NAMES[leaf]}"
    return key


def _candidates(key: str) -> Iterable[str]:
    yield key
    prefix = BASE_MODEL_PREFIX + "."
    if key.startswith(prefix):
        yield key[len(prefix):]
    else:
        yield prefix + key


def match_state(
    checkpoint_shapes: Mapping[str, Sequence[int]],
    model_shapes: Mapping[str, Sequence[int]],
    *,
    tied: Mapping[str, str] | None = None,
    ignore_mismatched_sizes: bool = False,
    source: str = "",
) -> LoadReport:
    """Plan which checkpoint tensor fills which model parameter.

    Args:
        checkpoint_shapes: checkpoint key -> shape, canonical (torch) layout.
        model_shapes: model key -> shape, canonical keys and layout.
        tied: model keys that share storage with another model key (defaults to
            :data:`TIED_KEYS` restricted to the model); absent from the checkpoint,
            they are reported as tied, not missing.
        ignore_mismatched_sizes: leave shape-mismatched parameters initialised
            (reported) instead of raising.
        source: file name(s) for messages.

    Raises:
        CheckpointError: shapes disagree (naming every key and both shapes) and
            ``ignore_mismatched_sizes`` is false.
    """
    if tied is None:
        tied = {k: v for k, v in TIED_KEYS.items() if k in model_shapes and v in model_shapes}
    report = LoadReport(source=source)
    mismatched: list[tuple[str, tuple, tuple]] = []
    for raw_key, shape in checkpoint_shapes.items():
        if any(p.search(raw_key) for p in IGNORED_KEY_PATTERNS):
            report.ignored_keys.append(raw_key)
            continue
        key = normalize_key(raw_key)
        target = next((c for c in _candidates(key) if c in model_shapes), None)
        if target is None:
            report.unexpected_keys.append(raw_key)
            continue
        if target in report.assignments:
            # Both `bert.x` and `x` present: the exact name wins, the other is unused.
            if raw_key == target:
                report.unexpected_keys.append(report.assignments[target])
                report.assignments[target] = raw_key
            else:
                report.unexpected_keys.append(raw_key)
            continue
        if tuple(shape) != tuple(model_shapes[target]):
            mismatched.append((target, tuple(shape), tuple(model_shapes[target])))
            continue
        report.assignments[target] = raw_key
    for key in model_shapes:
        if key in report.assignments or any(key == m[0] for m in mismatched):
            continue
        if key in tied:
            report.tied_keys.append(key)
        else:
            report.missing_keys.append(key)
    if mismatched and not ignore_mismatched_sizes:
        details = "\n  ".join(f"{k}: checkpoint {a} vs model {b}" for k, a, b in mismatched)
        where = f" in {source}" if source else ""
        raise ShapeMismatchError(
            f"{len(mismatched)} weight(s){where} do not match the model's shapes:\n  {details}\n"
            f"Check that config.json matches the checkpoint, or pass ignore_mismatched_sizes=True "
            f"to re-initialise these weights."
        )
    report.mismatched_keys = mismatched
    return report
