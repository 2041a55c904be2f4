"""Pure-Python BERT text normalisation and WordPiece, as in the original BERT.

`BasicTokenizer` cleans the text, lower-cases and strips accents, isolates CJK
characters and splits on whitespace and punctuation; `WordpieceTokenizer`
splits each word into the longest vocabulary pieces, left to right.  The
character classes below are Google BERT's, read from Python's `unicodedata`,
exactly as `transformers`' slow tokenizer reads them, so `BertTokenizer` gives
its tokens string for string (tests/test_tokenization_fuzz.py).  The
`tokenizers` library behind the fast tokenizer approximates them with its own,
older, Unicode tables, so the two engines differ on rare characters (listed in
docs/config-and-tokenizers.md).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping

__all__ = ["BasicTokenizer", "WordpieceTokenizer", "whitespace_tokenize"]

# Code-point blocks that count as "Chinese characters" in BERT: the CJK
# Unified Ideographs and their extensions, not Japanese kana or Hangul.
_CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)


def whitespace_tokenize(text: str) -> list[str]:
    """Split on runs of whitespace after stripping both ends."""
    text = text.strip()
    return text.split() if text else []


def _is_whitespace(char: str) -> bool:
    # \t, \n and \r are technically control characters but BERT treats them as spaces.
    if char in (" ", "\t", "\n", "\r"):
        return True
    return unicodedata.category(char) == "Zs"


def _is_control(char: str) -> bool:
    # Every "C" category is dropped: controls (Cc), format characters (Cf),
    # private use (Co), surrogates (Cs) and unassigned code points (Cn), as
    # Google BERT and transformers' slow tokenizer do.
    if char in ("\t", "\n", "\r"):
        return False
    return unicodedata.category(char).startswith("C")


def _is_punctuation(char: str) -> bool:
    cp = ord(char)
    # All non-letter/number ASCII counts as punctuation ("^", "$", "`" are not
    # in Unicode's P* classes), so BERT splits on them too.
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _is_cjk(cp: int) -> bool:
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


class BasicTokenizer:
    """Whitespace/punctuation splitting with BERT's text normalisation.

    Args:
        do_lower_case: lower-case the text (and strip accents unless
            ``strip_accents=False``).
        never_split: tokens passed through untouched (no lower-casing, no
            punctuation split).
        tokenize_chinese_chars: put spaces around every CJK ideograph.
        strip_accents: ``None`` follows ``do_lower_case``; ``True``/``False``
            force it.
        do_split_on_punc: split on punctuation characters.
    """

    def __init__(
        self,
        do_lower_case: bool = True,
        never_split: Iterable[str] | None = None,
        tokenize_chinese_chars: bool = True,
        strip_accents: bool | None = None,
        do_split_on_punc: bool = True,
    ):
        self.do_lower_case = do_lower_case
        self.never_split = set(never_split or ())
        self.tokenize_chinese_chars = tokenize_chinese_chars
        self.strip_accents = strip_accents
        self.do_split_on_punc = do_split_on_punc

    def tokenize(self, text: str, never_split: Iterable[str] | None = None) -> list[str]:
        """Return the list of basic tokens (words and punctuation) of ``text``."""
        keep = self.never_split.union(never_split) if never_split else self.never_split
        text = self._clean_text(text)
        if self.tokenize_chinese_chars:
            text = self._space_cjk(text)
        # NFC first, so a precomposed and a decomposed "é" give the same tokens.
        text = unicodedata.normalize("NFC", text)
        pieces: list[str] = []
        for token in whitespace_tokenize(text):
            if token not in keep:
                if self.do_lower_case:
                    token = token.lower()
                    if self.strip_accents is not False:
                        token = self._strip_accents(token)
                elif self.strip_accents:
                    token = self._strip_accents(token)
            pieces.extend(self._split_on_punc(token, keep))
        return whitespace_tokenize(" ".join(pieces))

    @staticmethod
    def _strip_accents(text: str) -> str:
        text = unicodedata.normalize("NFD", text)
        return "".join(ch for ch in text if unicodedata.category(ch) != "Mn")

    def _split_on_punc(self, text: str, keep: set[str]) -> list[str]:
        if not self.do_split_on_punc or text in keep:
            return [text]
        out: list[list[str]] = []
        start_new_word = True
        for char in text:
            if _is_punctuation(char):
                out.append([char])
                start_new_word = True
            else:
                if start_new_word:
                    out.append([])
                start_new_word = False
                out[-1].append(char)
        return ["".join(chars) for chars in out]

    @staticmethod
    def _space_cjk(text: str) -> str:
        return "".join(f" {ch} " if _is_cjk(ord(ch)) else ch for ch in text)

    @staticmethod
    def _clean_text(text: str) -> str:
        """Drop NUL, U+FFFD and control characters; map all whitespace to a space."""
        out = []
        for char in text:
            cp = ord(char)
            if cp == 0 or cp == 0xFFFD or _is_control(char):
                continue
            out.append(" " if _is_whitespace(char) else char)
        return "".join(out)


class WordpieceTokenizer:
    """Greedy longest-match-first WordPiece over a vocabulary.

    Args:
        vocab: token -> id mapping (continuation pieces carry ``##``).
        unk_token: emitted for a word with no segmentation.
        max_input_chars_per_word: longer words become ``unk_token`` whole.
    """

    def __init__(self, vocab: Mapping[str, int], unk_token: str, max_input_chars_per_word: int = 100):
        self.vocab = vocab
        self.unk_token = unk_token
        self.max_input_chars_per_word = max_input_chars_per_word

    def tokenize(self, text: str) -> list[str]:
        """Split already basic-tokenized ``text`` into WordPiece tokens."""
        output: list[str] = []
        for word in whitespace_tokenize(text):
            if len(word) > self.max_input_chars_per_word:
                output.append(self.unk_token)
                continue
            pieces, start = [], 0
            while start < len(word):
                end = len(word)
                piece = None
                while start < end:
                    candidate = word[start:end] if start == 0 else "##" + word[start:end]
                    if candidate in self.vocab:
                        piece = candidate
                        break
                    end -= 1
                if piece is None:
                    pieces = [self.unk_token]
                    break
                pieces.append(piece)
                start = end
            output.extend(pieces)
        return output
