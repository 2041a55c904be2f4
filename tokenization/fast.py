"""`BertTokenizerFast`: the BERT tokenizer on the Rust `tokenizers` library."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tokenizers import AddedToken, Tokenizer, decoders, normalizers, pre_tokenizers, processors, trainers
from tokenizers.models import WordPiece

from bert_core._io import atomic_write_text
from bert_core.errors import TokenizerError

from .added_tokens import SPECIAL_TOKEN_NAMES, as_added_token
from .base import BertTokenizerBase, init_arguments
from .batch_encoding import BatchEncoding
from .files import TOKENIZER_FILE
from .slow import BertTokenizer
from .vocab import check_file_size, load_vocab, normalizer_options

__all__ = ["BertTokenizerFast"]


def _build_engine(vocab: dict[str, int], unk_token: str, lowercase: bool, chinese: bool, strip_accents: bool | None, max_chars: int) -> Tokenizer:
    """The pipeline `transformers` builds from a ``vocab.txt``."""
    engine = Tokenizer(WordPiece(vocab, unk_token=unk_token, max_input_chars_per_word=max_chars))
    engine.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=chinese, strip_accents=strip_accents, lowercase=lowercase
    )
    engine.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    engine.decoder = decoders.WordPiece(prefix="##")
    return engine


class BertTokenizerFast(BertTokenizerBase):
    """BERT's WordPiece tokenizer backed by `tokenizers` (offsets, word ids, speed).

    Args:
        vocab_file: path of ``vocab.txt``; or
        tokenizer_file: path of a ``tokenizer.json`` (takes precedence), or
        tokenizer_object: a ready ``tokenizers.Tokenizer``.
        do_lower_case, tokenize_chinese_chars, strip_accents: the normaliser's
            settings when building from ``vocab.txt``.
        **kwargs: the shared options of :class:`BertTokenizerBase`.
    """

    is_fast = True
    vocab_files_names = {"vocab_file": "vocab.txt", "tokenizer_file": "tokenizer.json"}
    slow_tokenizer_class = BertTokenizer
    can_save_slow_tokenizer = True  # vocab.txt is always written alongside tokenizer.json

    def __init__(
        self,
        vocab_file: str | os.PathLike | None = None,
        tokenizer_file: str | os.PathLike | None = None,
        do_lower_case: bool = True,
        unk_token: str | AddedToken = "[UNK]",
        sep_token: str | AddedToken = "[SEP]",
        pad_token: str | AddedToken = "[PAD]",
        cls_token: str | AddedToken = "[CLS]",
        mask_token: str | AddedToken = "[MASK]",
        tokenize_chinese_chars: bool = True,
        strip_accents: bool | None = None,
        *,
        tokenizer_object: Tokenizer | None = None,
        max_input_chars_per_word: int = 100,
        do_basic_tokenize: bool = True,
        never_split: Any = None,
        **kwargs: Any,
    ):
        init_kwargs = init_arguments(locals())
        if tokenizer_object is not None:
            engine = tokenizer_object
        elif tokenizer_file is not None:
            check_file_size(tokenizer_file)
            try:
                engine = Tokenizer.from_file(os.fspath(tokenizer_file))
            except FileNotFoundError:
                raise TokenizerError(f"tokenizer file {os.fspath(tokenizer_file)} does not exist") from None
            except Exception as err:  # the Rust parser raises plain Exception
                raise TokenizerError(f"{os.fspath(tokenizer_file)} is not a valid tokenizer.json: {err}") from None
            options = normalizer_options(json.loads(engine.to_str()))
            do_lower_case = options.get("do_lower_case", do_lower_case)
            tokenize_chinese_chars = options.get("tokenize_chinese_chars", tokenize_chinese_chars)
            strip_accents = options.get("strip_accents", strip_accents)
        elif vocab_file is not None:
            engine = _build_engine(
                load_vocab(vocab_file, special_tokens=dict(unk_token=unk_token, sep_token=sep_token, pad_token=pad_token, cls_token=cls_token)), str(unk_token), do_lower_case,
                tokenize_chinese_chars, strip_accents, max_input_chars_per_word,
            )  # fmt: skip
        else:
            raise TokenizerError("BertTokenizerFast needs vocab_file, tokenizer_file or tokenizer_object")
        # The Rust WordPiece decoder already removes spaces before punctuation.
        kwargs.setdefault("clean_up_tokenization_spaces", False)
        super().__init__(
            do_lower_case=do_lower_case, tokenize_chinese_chars=tokenize_chinese_chars, strip_accents=strip_accents,
            unk_token=unk_token, sep_token=sep_token, pad_token=pad_token, cls_token=cls_token, mask_token=mask_token,
            init_kwargs=init_kwargs, **kwargs,
        )  # fmt: skip
        self.do_basic_tokenize = do_basic_tokenize
        self.never_split = never_split
        self.add_prefix_space = kwargs.get("add_prefix_space")  # stored as transformers does; BERT splits on whitespace anyway
        # tokenizer.json files often carry a fixed padding/truncation; each call sets its own.
        engine.no_padding()
        engine.no_truncation()
        self._tokenizer = engine
        self._add_tokens(self.all_special_tokens_extended, True)

    @property
    def backend_tokenizer(self) -> Tokenizer:
        """The underlying ``tokenizers.Tokenizer``."""
        return self._tokenizer

    def _special_tokens_changed(self) -> None:
        """Rebuild the ``[CLS] A [SEP] B [SEP]`` template from the current roles."""
        cls, sep = self.cls_token, self.sep_token
        if cls is None or sep is None:
            return
        self._tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{cls}:0 $A:0 {sep}:0",
            pair=f"{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1",
            special_tokens=[(cls, self.cls_token_id), (sep, self.sep_token_id)],
        )

    # -- vocabulary -----------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        return self._tokenizer.get_vocab_size(with_added_tokens=False)

    def get_vocab(self) -> dict[str, int]:
        return self._tokenizer.get_vocab(with_added_tokens=True)

    def _token_to_id(self, token: str) -> int | None:
        return self._tokenizer.token_to_id(token)

    def _id_to_token(self, index: int) -> str | None:
        return self._tokenizer.id_to_token(index)

    def _base_vocab(self) -> dict[str, int]:
        return self._tokenizer.get_vocab(with_added_tokens=False)

    def _added_tokens(self) -> list[tuple[int, str, bool]]:
        return sorted((i, t.content, t.special) for i, t in self._tokenizer.get_added_tokens_decoder().items())

    @property
    def decoder(self) -> Any:
        """The engine's WordPiece decoder (``backend_tokenizer.decoder``)."""
        return self._tokenizer.decoder

    @property
    def vocab(self) -> dict[str, int]:
        """Token -> id, added tokens included (transformers' fast ``vocab``)."""
        return self.get_vocab()

    @property
    def added_tokens_decoder(self) -> dict[int, AddedToken]:
        """Id -> AddedToken for every added (and special) token."""
        return dict(sorted(self._tokenizer.get_added_tokens_decoder().items()))

    def _add_tokens(self, tokens: list[str | AddedToken], special: bool) -> int:
        added = [as_added_token(t, special) for t in tokens]
        count = self._tokenizer.add_special_tokens(added) if special else self._tokenizer.add_tokens(added)
        if hasattr(self, "_tokenizer"):
            self._special_tokens_changed()
        return count

    def tokenize(self, text: str, pair: str | None = None, add_special_tokens: bool = False, **kwargs: Any) -> list[str]:
        """The token strings of ``text`` as the engine produced them (transformers' fast ``tokenize``)."""
        if not isinstance(text, str):
            raise TypeError(f"tokenize expects a string, got {type(text).__name__}")
        return self.encode_plus(text, pair, add_special_tokens=add_special_tokens, verbose=False, **kwargs).tokens()

    # -- encoding -------------------------------------------------------------------

    def _configure(self, opts: dict[str, Any]) -> None:
        """Set the engine's truncation and padding for one call."""
        if opts["truncation"] == "do_not_truncate":
            self._tokenizer.no_truncation()
        else:
            self._tokenizer.enable_truncation(
                opts["max_length"], stride=opts["stride"], strategy=opts["truncation"], direction=self.truncation_side
            )
        if opts["padding"] == "do_not_pad":
            self._tokenizer.no_padding()
        else:
            self._tokenizer.enable_padding(
                direction=opts["padding_side"], pad_id=self.pad_token_id, pad_type_id=self.pad_token_type_id,
                pad_token=self.pad_token, length=opts["max_length"] if opts["padding"] == "max_length" else None,
                pad_to_multiple_of=opts["pad_to_multiple_of"],
            )  # fmt: skip

    def _encode_rows(self, rows: list[tuple[Any, Any]], batched: bool, **opts: Any) -> BatchEncoding:
        if not opts["is_split_into_words"] and any(isinstance(v, (list, tuple)) for row in rows for v in row):
            # encode_plus on a list of tokens or ids: no text, hence no alignment.
            ids = [[v if v is None or (v and isinstance(v[0], int)) else self.convert_tokens_to_ids(list(v)) for v in row] for row in rows]
            return self._assemble([self._prepare_row(list(a), b and list(b), opts) for a, b in ids], batched, opts)
        self._configure(opts)
        self._tokenizer.encode_special_tokens = bool(opts["split_special_tokens"])
        if not batched and not rows[0][1]:
            rows = [(rows[0][0], None)]  # as transformers: an empty single text_pair means no pair
        inputs = [first if second is None else (first, second) for first, second in rows]
        try:
            encodings = self._tokenizer.encode_batch(inputs, add_special_tokens=opts["add_special_tokens"], is_pretokenized=opts["is_split_into_words"])
        except BaseException as err:  # Rust reports bad truncation settings as Exception or as a panic
            if not isinstance(err, Exception) and type(err).__name__ != "PanicException":
                raise
            raise TokenizerError(f"tokenizers could not encode the input with these truncation settings: {err}") from None
        fields = {"input_ids": "ids"}
        if opts["return_token_type_ids"]:
            fields["token_type_ids"] = "type_ids"
        if opts["return_attention_mask"]:
            fields["attention_mask"] = "attention_mask"
        if opts["return_special_tokens_mask"]:
            fields["special_tokens_mask"] = "special_tokens_mask"
        if opts["return_offsets_mapping"]:
            fields["offset_mapping"] = "offsets"
        data: dict[str, list[Any]] = {key: [] for key in fields}
        if opts["return_length"]:
            data["length"] = []
        flat, sample = [], []
        for index, encoding in enumerate(encodings):
            windows = [encoding, *encoding.overflowing] if opts["return_overflowing_tokens"] else [encoding]
            for window in windows:
                for key, attribute in fields.items():
                    data[key].append(getattr(window, attribute))
                if opts["return_length"]:
                    data["length"].append(len(window.ids))
                flat.append(window)
                sample.append(index)
        if opts["return_overflowing_tokens"]:
            data["overflow_to_sample_mapping"] = sample
        if not batched and opts["return_tensors"] is None and not opts["return_overflowing_tokens"]:
            # As transformers: a single input gives flat lists (a 1-element "length" list stays a list).
            return BatchEncoding({k: v[0] if v and isinstance(v[0], list) else v for k, v in data.items()}, flat)
        return BatchEncoding(data, flat, tensor_type=opts["return_tensors"])

    def _ids_to_text(self, ids: list[int], skip_special_tokens: bool) -> str:
        return self._tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        return self._tokenizer.decoder.decode(tokens)

    # -- training -------------------------------------------------------------------

    def train_new_from_iterator(
        self, text_iterator: Any, vocab_size: int, length: int | None = None,
        new_special_tokens: list[str | AddedToken] | None = None, special_tokens_map: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> "BertTokenizerFast":  # fmt: skip
        """A new tokenizer with this one's pipeline and a WordPiece vocabulary trained on ``text_iterator``.

        ``text_iterator`` yields strings or lists of strings; ``special_tokens_map``
        renames special tokens (``{"[CLS]": "<cls>"}``); ``new_special_tokens``
        are added to them. ``kwargs`` go to ``tokenizers.trainers.WordPieceTrainer``.
        """
        renames = dict(special_tokens_map or {})
        specials = [t for t in self.added_tokens_decoder.values() if t.special]
        specials = [as_added_token(t, True, content=renames.get(t.content, t.content)) for t in specials]
        specials += [as_added_token(t, True) for t in new_special_tokens or ()]
        data = json.loads(self._tokenizer.to_str())
        data["added_tokens"], data["post_processor"] = [], None
        data["model"]["vocab"] = {}
        data["model"]["unk_token"] = renames.get(data["model"]["unk_token"], data["model"]["unk_token"])
        engine = Tokenizer.from_str(json.dumps(data))
        options = dict(vocab_size=vocab_size, special_tokens=specials, continuing_subword_prefix="##", show_progress=False)
        engine.train_from_iterator(text_iterator, trainer=trainers.WordPieceTrainer(**{**options, **kwargs}), length=length)
        files = ("vocab_file", "tokenizer_file", "tokenizer_object", "vocab", "name_or_path")
        init = {k: v for k, v in self.init_kwargs.items() if k not in files}
        for role in (*SPECIAL_TOKEN_NAMES, "additional_special_tokens"):
            value = self._special[role]
            rename = lambda t: renames.get(t, t) if isinstance(t, str) else as_added_token(t, True, content=renames.get(t.content, t.content))  # noqa: E731
            if value is not None:
                init[role] = [rename(t) for t in value] if isinstance(value, list) else rename(value)
        init.update(model_max_length=self.model_max_length, padding_side=self.padding_side, truncation_side=self.truncation_side)
        return type(self)(tokenizer_object=engine, **init)

    # -- files ----------------------------------------------------------------------

    @classmethod
    def _from_files(cls, files: dict[str, Path | None], settings: dict[str, Any]):
        settings = {"vocab_file": files.get("vocab_file"), "tokenizer_file": files.get("tokenizer_file"), **settings}
        tokenizer = cls(**settings)
        # As transformers: normaliser options from tokenizer_config.json or from_pretrained's keywords win over tokenizer.json.
        wanted = {k: settings[k] for k in ("do_lower_case", "tokenize_chinese_chars", "strip_accents") if k in settings}
        if any(getattr(tokenizer, k) != v for k, v in wanted.items()):
            tokenizer._set_normalizer(**wanted)
        return tokenizer

    def _set_normalizer(self, **options: Any) -> None:
        """Rebuild the BertNormalizer with changed ``do_lower_case`` / ``tokenize_chinese_chars`` / ``strip_accents``."""
        for key, value in options.items():
            setattr(self, key, value)
            self.init_kwargs[key] = value
        self._tokenizer.normalizer = normalizers.BertNormalizer(
            clean_text=True, handle_chinese_chars=self.tokenize_chinese_chars, strip_accents=self.strip_accents, lowercase=self.do_lower_case
        )

    def _write_engine_files(self, directory: Path, prefix: str = "") -> list[str]:
        return [str(atomic_write_text(directory / (prefix + TOKENIZER_FILE), self._tokenizer.to_str(pretty=True)))]
