"""The answer verifier shared by evaluation and RL rewards.

A final answer is the number after ``#### `` when the text has one (GSM8K's convention,
the same one lm-eval's ``strict-match`` filter reads), otherwise the last number in the
text (like ``flexible-extract``). Numbers are compared as decimals after removing
thousands separators, currency signs and trailing zeros, so ``"1,234"``, ``"$1234"`` and
``"1234.0"`` are one answer.

A reference whose final answer is a short expression rather than a number (``3/4``, ``6x``:
``oxs_math``'s non-numeric items) is matched exactly as text after ``#### `` (MATH's
convention: ``6/8`` is not the simplified ``3/4``, ``0.75`` is not ``3/4``). A completion
whose final answer is such an expression is never equal to a number (``#### 6x`` is not 6).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

# A number: optional sign (only when not glued to a preceding word/digit, so the "3" in
# "5-3" is not negative), optional "$", digits with optional thousands commas, optional
# decimal part. Unicode minus signs are normalised before matching.
_NUMBER = re.compile(
    r"(?<![\w.])(?P<sign>[-+]?)\s?\$?\s?(?P<int>\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.(?P<frac>\d+))?"
)
_FINAL = re.compile(r"####\s*(?P<rest>[^\n]*)")
_MINUS_SIGNS = str.maketrans({"\u2212": "-", "\u2013": "-", "\u2014": "-", "\uff0d": "-"})


def normalize_number(text: str) -> str | None:
    """Canonical string of the first number in ``text`` (``"-1,234.50"`` -> ``"-1234.5"``),
    or None when it holds no number."""
    match = _NUMBER.search(text.translate(_MINUS_SIGNS))
    return None if match is None else _canonical(match)


def _canonical(match: re.Match[str]) -> str | None:
    digits = match.group("int").replace(",", "")
    frac = match.group("frac")
    try:
        value = Decimal(f"{digits}.{frac}" if frac else digits)
    except InvalidOperation:  # pragma: no cover - the regex only admits digits
        return None
    if match.group("sign") == "-":
        value = -value
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def extract_answer(text: str | None, strict: bool = False) -> str | None:
    """The final numeric answer in a model completion, canonicalised, or None.

    The number right after the first ``####`` wins; with ``strict=False`` a text without
    ``####`` falls back to its last number. Handles signs, commas, ``$`` and trailing text
    (``"#### -1,200 apples."`` -> ``"-1200"``).
    """
    if not text:
        return None
    text = text.translate(_MINUS_SIGNS)
    final = _FINAL.search(text)
    if final is not None:
        return normalize_number(final.group("rest"))
    if strict:
        return None
    last = None
    for last in _NUMBER.finditer(text):  # noqa: B007 - we want the last match
        pass
    return None if last is None else _canonical(last)


#: A final answer that may be a short expression (``3/4``, ``-12x``): the pattern the
#: oxs_math lm-eval tasks' strict-match filter reads.
_EXPRESSION = re.compile(r"####\s*(?P<expr>-?[0-9.,/]+x?)")
_PLAIN_NUMBER = re.compile(r"-?\$?\s?[0-9][0-9,]*(\.[0-9]+)?")


def _final_expression(text: str) -> str | None:
    """The text after the first ``####`` as an expression (commas and a trailing full stop
    dropped), or None when there is no ``####`` followed by one."""
    match = _EXPRESSION.search(text.translate(_MINUS_SIGNS))
    return None if match is None else match.group("expr").replace(",", "").rstrip(".")


def is_correct(completion: str | None, answer: str | int | float, strict: bool = False) -> bool:
    """True when the completion's final answer equals ``answer`` (a number, an expression
    such as ``3/4`` or ``6x``, or a text such as a reference solution ending ``#### N``).

    Numbers compare as decimals; expressions must match exactly after ``#### `` (see the
    module docstring)."""
    reference_text = str(answer).translate(_MINUS_SIGNS)
    if "####" in reference_text:
        reference_text = reference_text.split("####", 1)[1]
    reference_text = reference_text.strip().rstrip(".")
    if reference_text and not _PLAIN_NUMBER.fullmatch(reference_text):
        if _EXPRESSION.fullmatch(f"#### {reference_text}"):  # an expression answer
            return completion is not None and _final_expression(completion) == reference_text.replace(",", "")
    elif completion is not None:
        final = _final_expression(completion)
        if final is not None and not _PLAIN_NUMBER.fullmatch(final):
            return False  # "#### 6x" or "#### 3/4" is an expression, never the number 6 or 0.75
    predicted = extract_answer(completion, strict=strict)
    if predicted is None:
        return False
    reference = extract_answer(str(answer))
    return reference is not None and Decimal(predicted) == Decimal(reference)
