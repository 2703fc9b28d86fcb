"""Transcript cleaning: traditional → simplified Chinese and character filtering."""
from __future__ import annotations

import re

TEXT_MODES = ("zh", "en", "mixed")
_SPACES = re.compile(r"\s+")


def is_cjk(ch: str) -> bool:
    """A Chinese character in PPASR's range (U+4E00–U+9FA5): what ``zh`` mode keeps."""
    return "\u4e00" <= ch <= "\u9fa5"


def _is_word_char(ch: str) -> bool:
    return ("a" <= ch <= "z") or ("0" <= ch <= "9") or ch == "'"


def clean_text(text: str, mode: str = "zh") -> str:
    """Normalise a transcript.

    ``zh`` keeps only CJK characters (PPASR's behaviour); ``en`` keeps lower-case letters,
    digits, apostrophes and single spaces; ``mixed`` keeps both. Traditional characters are
    converted to simplified ones in every mode.
    """
    if mode not in TEXT_MODES:
        raise ValueError(f"unknown text mode {mode!r}; choose one of {TEXT_MODES}")
    import zhconv

    text = zhconv.convert(text, "zh-cn")
    if mode == "zh":
        return "".join(ch for ch in text if is_cjk(ch))
    text = text.lower()
    kept = []
    for ch in text:
        if _is_word_char(ch) or (mode == "mixed" and is_cjk(ch)):
            kept.append(ch)
        else:
            kept.append(" ")
    return _SPACES.sub(" ", "".join(kept)).strip()


# Words whose numeral characters are not numbers: cn2an alone would print "1样" for 一样. PPASR
# protected them with Baidu's LAC tagger (not installable today); this list covers the common ones.
_NOT_NUMBERS = ("一样", "一起", "一下", "一些", "一直", "一定", "一般", "一切", "一边", "一旦", "一致",
                "一向", "一同", "一再", "一共", "一口气", "一会", "一点儿", "一点点", "一味", "一律", "一贯",
                "一心", "一生", "一时", "一度", "一路", "一面", "一家人", "统一", "唯一", "之一", "专一", "万一",
                "千万", "万分", "十分", "一模一样", "三心二意", "一五一十", "乱七八糟", "七上八下", "五颜六色")


def to_arabic_numerals(text: str) -> str:
    """Chinese numerals → Arabic digits (``--to_an``): 二零二一年三月十五号 → 2021年3月15号."""
    import warnings

    import cn2an

    protected = {}
    for i, word in enumerate(sorted(_NOT_NUMBERS, key=len, reverse=True)):
        if word in text:
            marker = chr(0xE000 + i)  # private-use characters: no digit, never in a transcript
            protected[marker] = word
            text = text.replace(word, marker)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cn2an warns about every numeral-like run it leaves alone
        text = cn2an.transform(text, "cn2an")
    for marker, word in protected.items():
        text = text.replace(marker, word)
    return text
