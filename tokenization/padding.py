"""From token ids to model inputs: strategies, truncation, special tokens, padding.

Shared by both tokenizers: the pure-Python one encodes every call through
here, the fast one uses it for ``prepare_for_model`` and ``pad`` (the
`tokenizers` engine truncates and pads its own calls).
"""

from __future__ import annotations

from typing import Any

from bert_core.errors import TokenizerError

from .batch_encoding import BatchEncoding

__all__ = ["PaddingMixin", "PADDING", "TRUNCATION", "VERY_LARGE_INTEGER", "LARGE_INTEGER"]

# transformers' "no limit" model_max_length; anything above LARGE_INTEGER means unset.
VERY_LARGE_INTEGER = int(1e30)
LARGE_INTEGER = int(1e20)
PADDING = {True: "longest", "longest": "longest", "max_length": "max_length", False: "do_not_pad", "do_not_pad": "do_not_pad"}
TRUNCATION = {
    True: "longest_first", "longest_first": "longest_first", "only_first": "only_first", "only_second": "only_second",
    False: "do_not_truncate", None: "do_not_truncate", "do_not_truncate": "do_not_truncate",
}  # fmt: skip
_SIDE_COLUMNS = ("overflowing_tokens", "num_truncated_tokens", "length")


def _strategy_name(value: Any) -> Any:
    """transformers' PaddingStrategy / TruncationStrategy enums are str enums: use their value."""
    return getattr(value, "value", value)


class PaddingMixin:
    """``pad``, ``truncate_sequences``, ``prepare_for_model`` and the argument rules behind them."""

    def _strategies(self, padding: Any, truncation: Any, max_length: Any, multiple: Any, verbose: bool) -> tuple[str, str, int | None]:
        """Resolve the padding/truncation strategy names and the target length, as transformers does."""
        padding, truncation = _strategy_name(padding), _strategy_name(truncation)
        if not isinstance(padding, (bool, str)) or padding not in PADDING:
            raise TokenizerError(f"padding must be True, False, 'longest', 'max_length' or 'do_not_pad', got {padding!r}")
        if not (truncation is None or isinstance(truncation, (bool, str))) or truncation not in TRUNCATION:
            raise TokenizerError(
                f"truncation must be True, False, 'longest_first', 'only_first', 'only_second' or 'do_not_truncate', got {truncation!r}"
            )
        for name, value in (("max_length", max_length), ("pad_to_multiple_of", multiple)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
                raise TokenizerError(f"{name} must be a positive int or None, got {value!r}")
        if max_length is not None and padding is False and truncation is None:
            truncation = "longest_first"  # transformers: max_length alone turns truncation on
        pad, trunc = PADDING[padding], TRUNCATION[truncation]
        if max_length is None:
            unset = self.model_max_length > LARGE_INTEGER
            if pad == "max_length":
                pad, max_length = ("do_not_pad", None) if unset else (pad, self.model_max_length)
            if trunc != "do_not_truncate":
                trunc, max_length = ("do_not_truncate", max_length) if unset else (trunc, self.model_max_length)
        if trunc != "do_not_truncate" and pad != "do_not_pad" and multiple and max_length and max_length % multiple:
            raise TokenizerError(f"truncation length max_length={max_length} is not a multiple of pad_to_multiple_of={multiple}")
        return pad, trunc, max_length

    def truncate_sequences(
        self, ids: list[int], pair_ids: list[int] | None = None, num_tokens_to_remove: int = 0,
        truncation_strategy: Any = "longest_first", stride: int = 0,
    ) -> tuple[list[int], list[int] | None, list[int]]:  # fmt: skip
        """Remove ``num_tokens_to_remove`` tokens; returns ``(ids, pair_ids, overflowing_tokens)``.

        ``longest_first`` trims the longer sequence first (ties trim the pair);
        the ``only_*`` strategies trim one side and return the cut tokens, with
        ``stride`` tokens of context, as overflow.
        """
        strategy = TRUNCATION.get(_strategy_name(truncation_strategy), _strategy_name(truncation_strategy))
        if num_tokens_to_remove <= 0:
            return ids, pair_ids, []
        right = self.truncation_side == "right"
        target = pair_ids if strategy == "only_second" else ids
        if strategy == "only_first" or (strategy == "longest_first" and pair_ids is None) or (strategy == "only_second" and pair_ids):
            window = min(len(target), stride + num_tokens_to_remove)
            overflow = target[-window:] if right else target[:window]
            kept = target[:-num_tokens_to_remove] if right else target[num_tokens_to_remove:]
            return (ids, kept, overflow) if strategy == "only_second" else (kept, pair_ids, overflow)
        if strategy != "longest_first":
            return ids, pair_ids, []
        # Equalise the two lengths, then alternate, the pair giving up the odd token.
        first = min(abs(len(pair_ids) - len(ids)), num_tokens_to_remove)
        rest = num_tokens_to_remove - first
        cut_a, cut_b = (first + rest // 2, rest - rest // 2) if len(ids) > len(pair_ids) else (rest // 2, first + rest - rest // 2)
        if right:
            return ids[: len(ids) - cut_a], pair_ids[: len(pair_ids) - cut_b], []
        return ids[cut_a:], pair_ids[cut_b:], []

    def _prepare_row(self, ids: list[int], pair_ids: list[int] | None, opts: dict[str, Any]) -> dict[str, Any]:
        """Truncate one row and add its special tokens, segment ids and masks (no padding)."""
        if opts["return_overflowing_tokens"] and opts["truncation"] == "longest_first" and pair_ids is not None:
            raise TokenizerError(
                "return_overflowing_tokens is not possible for pairs with truncation='longest_first'; "
                "use truncation='only_first' or 'only_second'"
            )
        specials = self.num_special_tokens_to_add(pair_ids is not None) if opts["add_special_tokens"] else 0
        total = len(ids) + len(pair_ids or []) + specials
        max_length, overflow = opts["max_length"], []
        if opts["truncation"] != "do_not_truncate" and max_length and total > max_length:
            ids, pair_ids, overflow = self.truncate_sequences(ids, pair_ids, total - max_length, opts["truncation"], opts["stride"])
        if opts["add_special_tokens"]:
            row = {"input_ids": self.build_inputs_with_special_tokens(ids, pair_ids)}
            types = self.create_token_type_ids_from_sequences(ids, pair_ids)
            special_mask = self.get_special_tokens_mask(ids, pair_ids)
        else:
            row = {"input_ids": ids + (pair_ids or [])}
            types = [0] * len(ids) + [1] * len(pair_ids or [])
            special_mask = [0] * len(row["input_ids"])
        if opts["return_token_type_ids"]:
            row["token_type_ids"] = types
        if opts["return_special_tokens_mask"]:
            row["special_tokens_mask"] = special_mask
        if opts["return_overflowing_tokens"] and not opts["return_tensors"] and overflow:
            row["overflowing_tokens"] = overflow
            row["num_truncated_tokens"] = total - max_length
        return row

    def _assemble(self, encoded: list[dict[str, Any]], batched: bool, opts: dict[str, Any], prepend_batch_axis: bool = True) -> BatchEncoding:
        """Pad prepared rows and return them as one row (``batched=False``) or as columns."""
        pad = dict(max_length=opts["max_length"], pad_to_multiple_of=opts["pad_to_multiple_of"],
                   padding_side=opts["padding_side"], return_attention_mask=opts["return_attention_mask"])  # fmt: skip
        if not batched:
            row = dict(self.pad(encoded[0], padding=opts["padding"], **pad))
            if opts["return_length"]:
                row["length"] = len(row["input_ids"])
            return BatchEncoding(row, tensor_type=opts["return_tensors"], prepend_batch_axis=prepend_batch_axis)
        if opts["return_length"]:
            for row in encoded:
                row["length"] = len(row["input_ids"])
        columns: dict[str, list[Any]] = {}
        for row in encoded:
            for key, value in row.items():
                columns.setdefault(key, []).append(value)
        if opts["return_overflowing_tokens"] and "overflowing_tokens" in columns:
            # Rows that were not truncated have no overflow: keep the columns aligned.
            columns["overflowing_tokens"] = [row.get("overflowing_tokens", []) for row in encoded]
            columns["num_truncated_tokens"] = [row.get("num_truncated_tokens", 0) for row in encoded]
        padded = self.pad({k: v for k, v in columns.items() if k not in _SIDE_COLUMNS}, padding=opts["padding"], **pad)
        for key in _SIDE_COLUMNS:
            if key in columns:
                padded[key] = columns[key]
        return BatchEncoding(dict(padded), tensor_type=opts["return_tensors"])

    def prepare_for_model(self, ids: list[int], pair_ids: list[int] | None = None, *, prepend_batch_axis: bool = False, **kwargs: Any) -> BatchEncoding:
        """Turn one sequence (or pair) of ids into model inputs: truncation, special tokens, masks, padding.

        Takes the keyword arguments of ``__call__``; the result equals calling
        the tokenizer on the text those ids came from.
        """
        for name, value in (("ids", ids), ("pair_ids", pair_ids)):
            if value is not None and not (isinstance(value, (list, tuple)) and all(isinstance(i, int) for i in value)):
                raise TokenizerError(f"prepare_for_model: {name} must be a list of ints, got {type(value).__name__}")
        opts = self._options(kwargs)
        row = self._prepare_row(list(ids), None if pair_ids is None else list(pair_ids), opts)
        return self._assemble([row], False, opts, prepend_batch_axis=prepend_batch_axis)

    def pad(
        self,
        encoded_inputs: dict[str, Any] | list[dict[str, Any]],
        padding: bool | str = True,
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
        padding_side: str | None = None,
        return_attention_mask: bool | None = None,
        return_tensors: str | None = None,
        verbose: bool = True,
    ) -> BatchEncoding:
        """Pad already-encoded rows (a dict of lists, or a list of dicts, e.g. from a data collator).

        ``input_ids`` are padded with ``pad_token_id``, ``token_type_ids`` with 0,
        ``special_tokens_mask`` with 1, and ``attention_mask`` (built if absent)
        with 0, on ``padding_side``.
        """
        if isinstance(encoded_inputs, (list, tuple)):
            encoded_inputs = {key: [row[key] for row in encoded_inputs] for key in encoded_inputs[0]}
        padding = _strategy_name(padding)
        strategy = PADDING.get(padding) if isinstance(padding, (bool, str)) else None
        if strategy is None:
            raise TokenizerError(f"padding must be True, False, 'longest', 'max_length' or 'do_not_pad', got {padding!r}")
        if return_attention_mask is None:
            return_attention_mask = "attention_mask" in self.model_input_names
        side = padding_side or self.padding_side
        ids = encoded_inputs[self.model_input_names[0]]
        if hasattr(ids, "tolist"):
            encoded_inputs = {k: v.tolist() if hasattr(v, "tolist") else v for k, v in encoded_inputs.items()}
            ids = encoded_inputs[self.model_input_names[0]]
        rows = ids if ids and isinstance(ids[0], (list, tuple)) else None
        if rows is None:
            return BatchEncoding(self._pad_row(dict(encoded_inputs), strategy, max_length, pad_to_multiple_of, side, return_attention_mask), tensor_type=return_tensors)
        if strategy == "longest":
            strategy, max_length = "max_length", max(len(r) for r in rows)
        out: dict[str, list[Any]] = {}
        for i in range(len(rows)):
            row = {key: value[i] for key, value in encoded_inputs.items()}
            for key, value in self._pad_row(row, strategy, max_length, pad_to_multiple_of, side, return_attention_mask).items():
                out.setdefault(key, []).append(value)
        return BatchEncoding(out, tensor_type=return_tensors)

    def _pad_row(self, row: dict[str, Any], strategy: str, max_length: int | None, multiple: int | None, side: str, mask: bool) -> dict[str, Any]:
        ids = list(row[self.model_input_names[0]])
        if strategy == "longest":
            max_length = len(ids)
        if max_length is not None and multiple and max_length % multiple:
            max_length = (max_length // multiple + 1) * multiple
        if mask and "attention_mask" not in row:
            row["attention_mask"] = [1] * len(ids)
        missing = (max_length - len(ids)) if strategy != "do_not_pad" and max_length is not None else 0
        if missing > 0:
            if self.pad_token is None:
                raise TokenizerError("padding needs a pad_token: set tokenizer.pad_token (e.g. to '[PAD]')")
            fill = {self.model_input_names[0]: self.pad_token_id, "attention_mask": 0, "token_type_ids": self.pad_token_type_id, "special_tokens_mask": 1}
            for key, value in fill.items():
                if key in row:
                    row[key] = list(row[key]) + [value] * missing if side == "right" else [value] * missing + list(row[key])
        return row
