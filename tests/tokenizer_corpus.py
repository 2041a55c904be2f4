"""A tokenizer corpus covering what trips BERT tokenizers up.

Plain data, importable by every tokenizer test (the pure-Python and fast
tokenizers against `transformers`, the in-graph TF tokenizer against the fast
one). Each category is a list so a mismatch report can name it.
"""

from __future__ import annotations

PLAIN = [
    "Hello world!",
    "The capital of France is Paris.",
    "HuggingFace is creating a tool that the community uses to solve NLP tasks.",
    "  leading and trailing spaces  ",
    "tabs\tand\nnewlines\r\nmixed",
    "",
    " ",
    "a",
    "I can't believe it's not butter; they're great, aren't they?",
    "e-mail: someone@example.com, url: https://example.org/a?b=c&d=e#f",
    "Numbers: 3.14159, 1,000,000 and -42; dates 2024-01-31; times 12:30pm.",
    "Unbelievably, the antidisestablishmentarianism debate continued.",
    "ALL CAPS SENTENCE WITH SHOUTING",
    "MiXeD CaSe WoRdS and camelCaseIdentifiers and snake_case_names",
    "Punctuation!!! ??? ... --- ((( ))) [[[ ]]] {{{ }}} <<< >>> \"quoted\" 'single'",
    "$100 ^caret `backtick` ~tilde |pipe| \\backslash/ *star* +plus+ =equals= #hash %percent",
]
ACCENTS = [
    "Café déjà vu, naïve façade, coöperate, résumé.",
    "Crème brûlée à la française",
    "Ångström, Øresund, Straße, Æsir, Œuvre",
    "İstanbul ılık ĞÜŞÖÇ ğüşöç",
    "Ελληνικά: Καλημέρα κόσμε",
    "Русский: Привет, мир! Ёлка",
    "Tiếng Việt có dấu: Xin chào thế giới",
]
COMBINING = [
    "cafe\u0301 vs caf\u00e9",  # decomposed vs precomposed
    "n\u0303o\u0308 a\u030a e\u0328",
    "Z\u0351\u0368\u0364a\u0336\u0344l\u0315g\u036co",  # zalgo
    "\u0915\u094d\u0937 \u0915\u093f",  # Devanagari with virama and vowel sign
]
CJK = [
    "我爱北京天安门",
    "中文和English混合text",
    "日本語のテキストです。カタカナとひらがな",
    "한국어 텍스트입니다",
    "繁體中文與简体中文",
    "𠀀𠀁 rare ideographs in extension B",
    "全角：ＡＢＣ１２３！",
]
EMOJI = [
    "I love pizza 🍕🍕 and 😀😃😄",
    "family: 👨‍👩‍👧‍👦 flag: 🇫🇷 skin: 👍🏽",
    "✨ sparkles ★ stars ♥ hearts ☃ snowman",
]
CONTROL = [
    "null\x00byte and bell\x07 and escape\x1b[0m",
    "replacement \ufffd char",
    "form\x0cfeed and vertical\x0btab",
    "soft\u00adhyphen and left\u200eto\u200fright marks",
    "bidi \u202eoverride\u202c end",
]
ZERO_WIDTH = [
    "zero\u200bwidth\u200bspace",
    "zero\u200cwidth\u200dnon-joiner and joiner",
    "word\ufeffjoiner BOM",
    "no\u00a0break\u2009thin\u3000ideographic space",
]
FULL_WIDTH = [
    "Ｆｕｌｌ－ｗｉｄｔｈ　ｔｅｘｔ，ｐｕｎｃｔｕａｔｉｏｎ．",
    "ＨＥＬＬＯ　ｗｏｒｌｄ！？",
]
LIGATURES = [
    "ﬁnance ﬂow ﬀ ﬃ ﬄ ﬆ",
    "Ⅻ roman ① circled ™ trademark ½ fraction x² superscript",
]
LONG_WORDS = [
    "a" * 99,
    "b" * 100,
    "c" * 101,
    "supercalifragilisticexpialidocious " * 3,
    "Pneumonoultramicroscopicsilicovolcanoconiosis",
    "x" * 300 + " short",
    " ".join(["word"] * 600),  # longer than model_max_length
]
SPECIAL_IN_TEXT = [
    "The capital of France is [MASK].",
    "[CLS] already has [SEP] tokens [SEP]",
    "glued[MASK]tokens[SEP]here",
    "lowercase [mask] and [sep] are not special",
    "[UNK] [PAD] [MASK][MASK]",
    "[ MASK ] with spaces",
]
CORPUS: list[str] = PLAIN + ACCENTS + COMBINING + CJK + EMOJI + CONTROL + ZERO_WIDTH + FULL_WIDTH + LIGATURES + LONG_WORDS + SPECIAL_IN_TEXT

CATEGORIES = {
    "plain": PLAIN, "accents": ACCENTS, "combining": COMBINING, "cjk": CJK, "emoji": EMOJI,
    "control": CONTROL, "zero_width": ZERO_WIDTH, "full_width": FULL_WIDTH, "ligatures": LIGATURES,
    "long_words": LONG_WORDS, "special_in_text": SPECIAL_IN_TEXT,
}  # fmt: skip

PAIRS: list[tuple[str, str]] = [
    ("What is the capital of France?", "Paris is the capital and most populous city of France."),
    ("short", "a much longer second segment that goes on and on for quite a few more words than the first"),
    ("a much longer first segment that goes on and on for quite a few more words than the second", "short"),
    ("equal length one two", "equal length three four"),
    ("Café?", "Crème brûlée [MASK] 我爱北京"),
    ("", "empty first"),
    ("empty second", ""),
    ("emoji 😀 question", "ﬁnance answer with ligature"),
]

# Pre-tokenized input (is_split_into_words=True): word lists.
WORDS: list[list[str]] = [
    ["Hello", "world", "!"],
    ["Café", "déjà", "vu"],
    ["unbelievably", "long", "antidisestablishmentarianism"],
    ["New", "York", "City", "[MASK]"],
    ["中文", "text"],
]

#: Tokenizer option sets every corpus test runs under (the vocabulary decides cased vs uncased files).
OPTIONS = {
    "uncased": {},
    "cased": {"do_lower_case": False},
    "uncased-keep-accents": {"strip_accents": False},
    "cased-strip-accents": {"do_lower_case": False, "strip_accents": True},
    "no-chinese-split": {"tokenize_chinese_chars": False},
}
