"""Deterministic, seeded generators for the bundled synthetic task families.

Every generator is a pure function of ``(n, seed, difficulty)``: it draws from a
``random.Random`` seeded by a SHA-256 of its arguments (never Python's salted ``hash``),
so the same call gives the same examples on every machine and Python version.

Families:

* ``arith`` (the training domain): GSM8K-style word problems. Difficulty = number of
  steps (1-3 operations) and the size of the numbers. Worked solution, one equation per
  line, final line ``#### N``.
* ``sequence`` (out of domain, generative): the next term of an arithmetic progression,
  with a worked solution ending ``#### N``.
* ``compare`` (out of domain, multiple choice): pick the largest/smallest of four numbers;
  scored by log-likelihood of each choice.

Every problem carries its difficulty ``level`` (a small integer, 1 = easiest) and the
generator's ``difficulty`` parameters, derived from what was drawn (never an extra draw, so
levels change no prompt or solution):

* ``arith``: level = the number of operations (1-3), the convention of
  ``oxstudy.dataselect.record_level`` (curricula and ``where: {level: ...}`` filters); the
  number size and ``allow_mul`` of its ``ARITH_LEVELS`` rung are in ``difficulty``.
* ``sequence``: level by the size of the common difference: 1 for 2-5, 2 for 6-10, 3 for
  11-15 (``SEQUENCE_STEP_BANDS``); ``difficulty`` also says whether it is decreasing.
* ``compare``: level by how close the runner-up is to the answer (``gap``, the absolute
  difference): 1 for a gap of 24 or more, 2 for 10-23, 3 for 1-9 (``COMPARE_GAP_BANDS``, near
  terciles of the test split).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Any

NAMES = [
    "Mia",
    "Leo",
    "Ava",
    "Sam",
    "Zoe",
    "Max",
    "Ivy",
    "Ben",
    "Lia",
    "Tom",
    "Eva",
    "Dan",
    "Amy",
    "Kai",
    "Nora",
    "Omar",
    "Rosa",
    "Yuki",
    "Ana",
    "Raj",
]
ITEMS = [
    "apples",
    "books",
    "coins",
    "pens",
    "cards",
    "shells",
    "stickers",
    "marbles",
    "cookies",
    "stamps",
    "eggs",
    "balls",
]
_ADD = ["buys {n} more {item}.", "finds {n} more {item}.", "gets {n} more {item}."]
_SUB = ["gives away {n} {item}.", "loses {n} {item}.", "sells {n} {item}."]
_MUL = ["gets {k} times as many {item}."]

#: ``sequence`` levels: the largest common difference (absolute) of levels 1, 2, 3.
SEQUENCE_STEP_BANDS = (5, 10, 15)
#: ``compare`` levels: the smallest answer-to-runner-up gap of levels 1, 2, 3 (closer = harder).
COMPARE_GAP_BANDS = (24, 10, 1)


@dataclass(frozen=True)
class Difficulty:
    """How hard an arithmetic problem is: ``steps`` operations on numbers up to
    ``max_number`` (multiplication by 2-3 appears only when ``allow_mul``)."""

    steps: int = 1
    max_number: int = 10
    allow_mul: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "max_number": self.max_number, "allow_mul": self.allow_mul}


def seeded_rng(*parts: object) -> random.Random:
    """A ``random.Random`` seeded from a SHA-256 of the parts (stable across processes)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def arith_problem(rng: random.Random, difficulty: Difficulty) -> dict[str, Any]:
    """One arithmetic word problem with its worked solution and answer."""
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    hi = difficulty.max_number
    value = rng.randint(2, hi)
    sentences = [f"{name} has {value} {item}."]
    lines = []
    for step in range(difficulty.steps):
        ops = ["add", "sub"] + (["mul"] if difficulty.allow_mul and value <= hi else [])
        op = rng.choice(ops)
        if op == "sub" and value < 2:
            op = "add"
        if op == "add":
            n = rng.randint(1, hi)
            new, line = value + n, f"{value} + {n} = {value + n}"
            text = rng.choice(_ADD).format(n=n, item=item)
        elif op == "sub":
            n = rng.randint(1, min(value - 1, hi))
            new, line = value - n, f"{value} - {n} = {value - n}"
            text = rng.choice(_SUB).format(n=n, item=item)
        else:
            k = rng.randint(2, 3)
            new, line = value * k, f"{value} * {k} = {value * k}"
            text = rng.choice(_MUL).format(k=k, item=item)
        sentences.append(f"{name} {text}" if step == 0 else f"Then {name} {text}")
        lines.append(line)
        value = new
    sentences.append(f"How many {item} does {name} have now?")
    answer = str(value)
    return {
        "prompt": " ".join(sentences),
        "solution": "\n".join(lines) + f"\n#### {answer}",
        "answer": answer,
        "level": difficulty.steps,
        "difficulty": difficulty.as_dict(),
    }


def sequence_problem(rng: random.Random, max_start: int = 60, max_step: int = 15) -> dict[str, Any]:
    """Next term of an arithmetic progression (increasing or decreasing, 4 or 5 terms
    shown; every term and the answer stay positive)."""
    step = rng.randint(2, max_step)
    shown = rng.choice((4, 5))
    if rng.random() < 0.3:
        start = rng.randint(shown * step + 1, shown * step + max_start)
        step = -step
    else:
        start = rng.randint(1, max_start)
    terms = [start + i * step for i in range(shown)]
    answer = terms[-1] + step
    op, size = ("+", step) if step > 0 else ("-", -step)
    solution = f"{terms[0]} {op} {size} = {terms[1]}\n{terms[-1]} {op} {size} = {answer}\n#### {answer}"
    return {
        "prompt": f"What number comes next: {', '.join(map(str, terms))}?",
        "solution": solution,
        "answer": str(answer),
        "level": sequence_level(abs(step)),
        "difficulty": {"step": abs(step), "terms": shown, "decreasing": step < 0},
    }


def sequence_level(step: int) -> int:
    """Level of a progression with common difference ``step`` (absolute): ``SEQUENCE_STEP_BANDS``."""
    return next((i + 1 for i, top in enumerate(SEQUENCE_STEP_BANDS) if step <= top), len(SEQUENCE_STEP_BANDS))


def compare_level(gap: int) -> int:
    """Level of a comparison whose runner-up is ``gap`` away from the answer: ``COMPARE_GAP_BANDS``."""
    return next((i + 1 for i, least in enumerate(COMPARE_GAP_BANDS) if gap >= least), len(COMPARE_GAP_BANDS))


def compare_problem(rng: random.Random, max_number: int = 99) -> dict[str, Any]:
    """Pick the largest or smallest of four distinct numbers (multiple choice)."""
    numbers = rng.sample(range(1, max_number + 1), 4)
    largest = rng.random() < 0.5
    target = max(numbers) if largest else min(numbers)
    word = "largest" if largest else "smallest"
    # Each choice is the assistant's whole reply, in the same "#### N" form as the
    # generative tasks, so log-likelihoods are compared on the format the model knows.
    choices = [f"#### {x}" for x in numbers]
    gap = min(abs(x - target) for x in numbers if x != target)
    return {
        "prompt": f"Which number is the {word}: {', '.join(map(str, numbers))}?",
        "solution": f"#### {target}",
        "answer": str(target),
        "choices": choices,
        "label": numbers.index(target),
        "level": compare_level(gap),
        "difficulty": {"max_number": max_number, "gap": gap},
    }


def generate(
    family: str, n: int, seed: int | str, difficulties: list[Difficulty] | None = None
) -> list[dict[str, Any]]:
    """``n`` problems of one family. ``difficulties`` (arith only) are cycled in order,
    so a mixed set holds each level in equal parts."""
    rng = seeded_rng(family, seed)
    if family == "arith":
        levels = difficulties or [Difficulty()]
        return [arith_problem(rng, levels[i % len(levels)]) for i in range(n)]
    if family == "sequence":
        return [sequence_problem(rng) for _ in range(n)]
    if family == "compare":
        return [compare_problem(rng) for _ in range(n)]
    raise ValueError(f"unknown task family {family!r} (known: arith, sequence, compare)")
