"""Deterministic, seeded generators for the bundled synthetic task families.

Every generator is a pure function of ``(n, seed, difficulty)``: it draws from a
``random.Random`` seeded by a SHA-256 of its arguments (never Python's salted ``hash``),
so the same call gives the same examples on every machine and Python version.

Families:

* ``arith`` (the training domain): GSM8K-style word problems. Difficulty = number of
  steps (1-3 operations) and the size of the numbers. Worked solution, one equation per
  line, final line ``#### N``.
* ``math`` (a second, harder math dataset in the MATH style): operator precedence,
  parentheses, linear equations, fraction reduction and collecting like terms, with a
  worked solution ending ``#### ANSWER``. Answers are numbers (the ``numeric`` kinds: the
  ``oxs_math_numeric`` subset) or short expressions (``3/4``, ``6x``).
* ``sequence`` (out of domain, generative): the next term of an arithmetic progression;
  the worked solution finds the common difference first (``b - a = d``), then adds it to
  the last term (``last + d = answer``), ending ``#### N``.
* ``compare`` (out of domain, multiple choice): pick the largest/smallest of four numbers;
  scored by log-likelihood of each choice.
* ``facts`` (knowledge, multiple choice): attributes of invented creatures. Only the
  pretraining corpus states the facts (in wordings the test never uses, repeated by level);
  the test asks each one MMLU-style. No post-training data holds them, so they measure what
  post-training keeps or forgets of pretraining knowledge.

Every problem carries its difficulty ``level`` (a small integer, 1 = easiest) and the
generator's ``difficulty`` parameters, derived from what was drawn (never an extra draw, so
levels change no prompt or solution):

* ``arith``: level = the number of operations (1-3), the convention of
  ``oxstudy.dataselect.record_level`` (curricula and ``where: {level: ...}`` filters); the
  number size and ``allow_mul`` of its ``ARITH_LEVELS`` rung are in ``difficulty``.
* ``math``: level by problem kind (``MATH_KINDS``: 1 precedence; 2 equation, fraction; 3
  parentheses, like terms; 4 two-step equation); ``difficulty`` holds the kind and the number
  of operations (worked-solution lines).
* ``sequence``: the level is the ``SEQUENCE_LEVELS`` rung the problem was drawn from (1:
  small increasing steps from a small start; 2: larger steps and starts; 3: decreasing);
  sets cycle the rungs, so levels come in equal parts.
* ``compare``: level by how close the runner-up is to the answer (``gap``, the absolute
  difference): 1 for a gap of 24 or more, 2 for 10-23, 3 for 1-9 (``COMPARE_GAP_BANDS``, near
  terciles of the test split).
* ``facts``: level by how often the pretraining corpus states the fact (``FACT_REPEATS``:
  level 1 facts often, level 3 once).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from math import gcd
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

#: ``sequence`` levels 1, 2, 3: (largest step, largest first term, decreasing). Level 1
#: steps start at 1, the others at 2; decreasing progressions keep every term positive.
#: Steps stay small (differences of 1-9): tiny models learn to subtract two nearby 2-digit
#: numbers far more slowly than anything else here (steps up to 19 left every zoo model at
#: 0-8%, docs/world.md).
SEQUENCE_LEVELS: tuple[tuple[int, int, bool], ...] = ((5, 30, False), (9, 50, False), (9, 50, True))
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


def sequence_problem(rng: random.Random, level: int = 1) -> dict[str, Any]:
    """Next term of an arithmetic progression at ``level`` (``SEQUENCE_LEVELS``; 3-5 terms
    shown, every term and the answer positive). The solution works out the common
    difference from the first two terms, then adds it to the last one."""
    max_step, max_start, decreasing = SEQUENCE_LEVELS[level - 1]
    step = rng.randint(1 if level == 1 else 2, max_step)
    shown = rng.choice((3, 4, 5))
    if decreasing:
        start = rng.randint(shown * step + 1, shown * step + max_start)
        step = -step
    else:
        start = rng.randint(1, max_start)
    terms = [start + i * step for i in range(shown)]
    answer = terms[-1] + step
    op, size = ("+", step) if step > 0 else ("-", -step)
    find_step = f"{terms[1]} - {terms[0]} = {step}" if step > 0 else f"{terms[0]} - {terms[1]} = {size}"
    return {
        "prompt": f"What number comes next: {', '.join(map(str, terms))}?",
        "solution": f"{find_step}\n{terms[-1]} {op} {size} = {answer}\n#### {answer}",
        "answer": str(answer),
        "level": level,
        "difficulty": {
            "step": size,
            "terms": shown,
            "max_step": max_step,
            "max_start": max_start,
            "decreasing": step < 0,
        },
    }


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


# --------------------------------------------------------------------------- math

#: MATH-style problem kinds: their level and whether the answer is a number (the
#: ``numeric`` subset, ``oxs_math_numeric``) or a short expression (``3/4``, ``6x``).
MATH_KINDS: dict[str, dict[str, Any]] = {
    "precedence": {"level": 1, "numeric": True},  # a + b * c
    "equation": {"level": 2, "numeric": True},  # a x + b = c
    "fraction": {"level": 2, "numeric": False},  # reduce p/q
    "parentheses": {"level": 3, "numeric": True},  # (a + b) * c - d
    "like_terms": {"level": 3, "numeric": False},  # a x + b x - c x
    "two_step_equation": {"level": 4, "numeric": True},  # a (x + b) = c
}


def math_problem(rng: random.Random, kind: str) -> dict[str, Any]:
    """One MATH-style problem of ``kind`` (see ``MATH_KINDS``) with a worked solution
    (one step a line) ending ``#### ANSWER``."""
    if kind == "precedence":
        a, b, c = rng.randint(1, 50), rng.randint(2, 9), rng.randint(2, 9)
        op = rng.choice("+-")
        if op == "-":  # keep the answer non-negative
            a = rng.randint(b * c, b * c + 50)
        answer: int | str = a + b * c if op == "+" else a - b * c
        prompt = f"Compute {a} {op} {b} * {c}."
        lines = [f"{b} * {c} = {b * c}", f"{a} {op} {b * c} = {answer}"]
    elif kind == "equation":
        x, a, b = rng.randint(1, 12), rng.randint(2, 9), rng.randint(1, 50)
        c = a * x + b
        prompt = f"Solve for x: {a}x + {b} = {c}."
        lines = [f"{c} - {b} = {c - b}", f"{c - b} / {a} = {x}"]
        answer = x
    elif kind == "fraction":
        p, q = rng.randint(1, 19), rng.randint(2, 20)
        while p >= q or gcd(p, q) != 1:
            p, q = rng.randint(1, 19), rng.randint(2, 20)
        k = rng.randint(2, 99 // q)
        prompt = f"Simplify {p * k}/{q * k}."
        lines = [f"gcd({p * k}, {q * k}) = {k}", f"{p * k} / {k} = {p}", f"{q * k} / {k} = {q}"]
        answer = f"{p}/{q}"
    elif kind == "parentheses":
        a, b, c = rng.randint(1, 15), rng.randint(1, 15), rng.randint(2, 5)
        d = rng.randint(1, (a + b) * c - 1)
        answer = (a + b) * c - d
        prompt = f"Compute ({a} + {b}) * {c} - {d}."
        lines = [f"{a} + {b} = {a + b}", f"{a + b} * {c} = {(a + b) * c}", f"{(a + b) * c} - {d} = {answer}"]
    elif kind == "like_terms":
        a, b = rng.randint(2, 20), rng.randint(2, 20)
        c = rng.randint(1, a + b - 1)
        total = a + b - c
        prompt = f"Simplify {a}x + {b}x - {c}x."
        lines = [f"{a} + {b} = {a + b}", f"{a + b} - {c} = {total}"]
        answer = f"{total}x"
    elif kind == "two_step_equation":
        x, a, b = rng.randint(1, 20), rng.randint(2, 9), rng.randint(1, 15)
        c = a * (x + b)
        prompt = f"Solve for x: {a}(x + {b}) = {c}."
        lines = [f"{c} / {a} = {c // a}", f"{c // a} - {b} = {x}"]
        answer = x
    else:
        raise ValueError(f"unknown math kind {kind!r} (known: {', '.join(MATH_KINDS)})")
    info = MATH_KINDS[kind]
    return {
        "prompt": prompt,
        "solution": "\n".join(lines) + f"\n#### {answer}",
        "answer": str(answer),
        "level": info["level"],
        "numeric": info["numeric"],
        "difficulty": {"kind": kind, "operations": len(lines)},
    }


# --------------------------------------------------------------------------- facts

_SYLLABLES = ["ba", "ko", "ri", "zu", "ne", "ta", "lo", "mi", "sa", "du", "fe", "gi", "po", "ve", "xa", "qu"]
#: Attribute -> its possible values; every invented creature has one value of each.
FACT_ATTRIBUTES: dict[str, list[str]] = {
    "color": ["red", "blue", "green", "gold", "gray", "pink", "black", "white"],
    "home": ["Arn", "Bex", "Cyl", "Dov", "Elm", "Fyr", "Gux", "Hol"],
    "food": ["moss", "fish", "seeds", "roots", "figs", "bugs", "kelp", "salt"],
}
#: How the test asks (MMLU-style) and, separately, how the pretraining corpus states a fact:
#: the corpus never uses the test's wording, so a right answer is recall, not copying.
FACT_QUESTIONS = {
    "color": "What color is the {e}?",
    "home": "Where does the {e} live?",
    "food": "What does the {e} eat?",
}
FACT_STATEMENTS = {
    "color": ["The {e} has which color?", "Color of the {e}?", "Name the {e}'s color."],
    "home": ["The {e} lives where?", "Home of the {e}?", "Name the {e}'s home."],
    "food": ["The {e} eats what?", "Food of the {e}?", "Name the {e}'s food."],
}
N_ENTITIES = 81
#: Corpus statements per fact at levels 1, 2, 3 (the entities are split into three equal
#: tiers): frequent facts are level 1, facts stated once level 3.
FACT_REPEATS: tuple[int, ...] = (6, 3, 1)


def fact_level(index: int, n: int = N_ENTITIES) -> int:
    """The level (1-3) of entity ``index``: its tier of corpus frequency."""
    return min(3, 1 + index * 3 // n)


def fact_entities(n: int = N_ENTITIES) -> list[dict[str, str]]:
    """The invented creatures and their attributes (fixed by a seed, same everywhere)."""
    rng = seeded_rng("oxstudy-facts-world", n)
    names: list[str] = []
    while len(names) < n:
        name = "".join(rng.choice(_SYLLABLES) for _ in range(rng.choice((2, 3))))
        if name not in names:
            names.append(name)
    return [{"name": name, **{a: rng.choice(v) for a, v in FACT_ATTRIBUTES.items()}} for name in names]


def fact_question(rng: random.Random, entity: dict[str, str], attribute: str, level: int) -> dict[str, Any]:
    """A 4-choice question on one fact (the true value and three other values of the
    attribute, shuffled); each choice is a whole reply ``#### value``."""
    truth = entity[attribute]
    distractors = rng.sample([v for v in FACT_ATTRIBUTES[attribute] if v != truth], 3)
    options = [truth, *distractors]
    rng.shuffle(options)
    return {
        "prompt": FACT_QUESTIONS[attribute].format(e=entity["name"]),
        "solution": f"#### {truth}",
        "answer": truth,
        "choices": [f"#### {o}" for o in options],
        "label": options.index(truth),
        "level": level,
        "difficulty": {"attribute": attribute, "entity": entity["name"], "repeats": FACT_REPEATS[level - 1]},
    }


def fact_statements() -> list[dict[str, Any]]:
    """Every fact as corpus statements, one row per fact: ``entity``, ``attribute``,
    ``value``, ``level``, ``repeats`` (``FACT_REPEATS[level - 1]``) and ``statements``
    (``repeats`` (prompt, reply) pairs, cycling the ``FACT_STATEMENTS`` wordings, never the
    test's). A corpus that includes each pair once states every fact ``repeats`` times."""
    rows = []
    for i, entity in enumerate(fact_entities()):
        level = fact_level(i)
        repeats = FACT_REPEATS[level - 1]
        for attribute in FACT_ATTRIBUTES:
            wordings = FACT_STATEMENTS[attribute]
            value = entity[attribute]
            pairs = [
                (wordings[(i + r) % len(wordings)].format(e=entity["name"]), f"#### {value}")
                for r in range(repeats)
            ]
            rows.append(
                {
                    "entity": entity["name"],
                    "attribute": attribute,
                    "value": value,
                    "level": level,
                    "repeats": repeats,
                    "statements": pairs,
                }
            )
    return rows


def generate(
    family: str, n: int, seed: int | str, difficulties: list[Difficulty] | None = None
) -> list[dict[str, Any]]:
    """``n`` problems of one family. ``difficulties`` (arith only) are cycled in order,
    so a mixed set holds each level in equal parts; ``math`` cycles its kinds and
    ``sequence`` its levels (``facts`` has no generator draw: see ``fact_statements``)."""
    rng = seeded_rng(family, seed)
    if family == "arith":
        levels = difficulties or [Difficulty()]
        return [arith_problem(rng, levels[i % len(levels)]) for i in range(n)]
    if family == "math":
        kinds = list(MATH_KINDS)
        return [math_problem(rng, kinds[i % len(kinds)]) for i in range(n)]
    if family == "sequence":
        return [sequence_problem(rng, i % len(SEQUENCE_LEVELS) + 1) for i in range(n)]
    if family == "compare":
        return [compare_problem(rng) for _ in range(n)]
    raise ValueError(f"unknown task family {family!r} (known: arith, math, sequence, compare)")
