"""Deterministic, seeded generators for the bundled synthetic task families.

Every generator is a pure function of ``(rng, difficulty)``: callers draw from a
``random.Random`` seeded by a SHA-256 of their arguments (never Python's salted ``hash``),
so the same call gives the same examples on every machine and Python version.

Every example carries its difficulty as data: ``level`` (1 = easiest, an int) and
``difficulty`` (the generator's parameters at that level), so accuracy can be broken down
by level in the store.

Families (text is kept compact: the zoo models read one token per character):

* ``arith`` (the training domain): GSM8K-style word problems. Difficulty = number of
  operations (1-3), the size of the numbers and whether multiplication appears. Worked
  solution, one equation per line, final line ``#### N``.
* ``math`` (a second, harder math dataset in the MATH style): operator precedence,
  parentheses, linear equations, fraction reduction and collecting like terms. Answers
  are numbers (the ``numeric`` subset) or short expressions (``3/4``, ``6x``).
* ``sequence`` (out of domain, generative): the next term of an arithmetic progression,
  with the step worked out first.
* ``compare`` (out of domain, multiple choice): pick the largest/smallest of four numbers;
  scored by log-likelihood of each choice.
* ``facts`` (knowledge, multiple choice): attributes of invented creatures. The
  pretraining corpus states every fact (in other wordings); the test asks them MMLU-style.
  No post-training data source holds them, so they measure what post-training forgets.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from math import gcd
from typing import Any

NAMES = ["Mia", "Leo", "Ava", "Sam", "Zoe", "Max", "Ivy", "Ben", "Lia", "Tom", "Eva", "Dan", "Amy", "Kai"]
ITEMS = ["apples", "books", "coins", "pens", "cards", "shells", "stamps", "eggs", "balls", "cups"]
_ADD = ["buys {n} more", "finds {n} more", "gets {n} more"]
_SUB = ["gives away {n}", "loses {n}", "sells {n}"]
_MUL = ["gets {k} times as many"]


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


# --------------------------------------------------------------------------- arith


def arith_problem(rng: random.Random, difficulty: Difficulty, level: int = 1) -> dict[str, Any]:
    """One compact arithmetic word problem with its worked solution and answer."""
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    hi = difficulty.max_number
    value = rng.randint(2, hi)
    clauses = []
    lines = []
    for _ in range(difficulty.steps):
        ops = ["add", "sub"] + (["mul"] if difficulty.allow_mul and value <= hi else [])
        op = rng.choice(ops)
        if op == "sub" and value < 2:
            op = "add"
        if op == "add":
            n = rng.randint(1, hi)
            new, line = value + n, f"{value} + {n} = {value + n}"
            clauses.append(rng.choice(_ADD).format(n=n))
        elif op == "sub":
            n = rng.randint(1, min(value - 1, hi))
            new, line = value - n, f"{value} - {n} = {value - n}"
            clauses.append(rng.choice(_SUB).format(n=n))
        else:
            k = rng.randint(2, 3)
            new, line = value * k, f"{value} * {k} = {value * k}"
            clauses.append(rng.choice(_MUL).format(k=k))
        lines.append(line)
        value = new
    story = ", then ".join(clauses)
    answer = str(value)
    return {
        "prompt": f"{name} has {lines[0].split(' ')[0]} {item}, {story}. How many now?",
        "solution": "\n".join(lines) + f"\n#### {answer}",
        "answer": answer,
        "level": level,
        "difficulty": difficulty.as_dict(),
    }


# --------------------------------------------------------------------------- math

#: MATH-style problem kinds by level; ``numeric`` marks the kinds whose answer is a number.
MATH_KINDS: dict[str, dict[str, Any]] = {
    "precedence": {"level": 1, "numeric": True},  # a + b * c
    "equation": {"level": 2, "numeric": True},  # a x + b = c
    "fraction": {"level": 2, "numeric": False},  # reduce p/q
    "parentheses": {"level": 3, "numeric": True},  # (a + b) * c - d
    "like_terms": {"level": 3, "numeric": False},  # a x + b x - c x
    "two_step_equation": {"level": 4, "numeric": True},  # a (x + b) = c
}


def math_problem(rng: random.Random, kind: str) -> dict[str, Any]:
    """One MATH-style problem of ``kind`` (see ``MATH_KINDS``) with a worked solution."""
    if kind == "precedence":
        a, b, c = rng.randint(1, 50), rng.randint(2, 9), rng.randint(2, 9)
        op = rng.choice("+-")
        if op == "-":
            a = rng.randint(b * c, b * c + 50)
        answer = a + b * c if op == "+" else a - b * c
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
        lines = [f"gcd = {k}"]
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


# --------------------------------------------------------------------------- sequence

#: Next-term levels: (largest step, largest first term, share of decreasing progressions).
SEQUENCE_LEVELS: tuple[tuple[int, int, float], ...] = ((9, 40, 0.0), (19, 99, 0.0), (19, 99, 1.0))


def sequence_problem(rng: random.Random, level: int = 1) -> dict[str, Any]:
    """Next term of an arithmetic progression (3-5 terms shown; every term and the answer
    stay positive); the solution works out the step first."""
    max_step, max_start, decreasing = SEQUENCE_LEVELS[level - 1]
    step = rng.randint(1 if level == 1 else 2, max_step)
    shown = rng.choice((3, 4, 5))
    if rng.random() < decreasing:
        start = rng.randint(shown * step + 1, shown * step + max_start)
        step = -step
    else:
        start = rng.randint(1, max_start)
    terms = [start + i * step for i in range(shown)]
    answer = terms[-1] + step
    op, size = ("+", step) if step > 0 else ("-", -step)
    solution = (
        f"{terms[1]} - {terms[0]} = {step}\n{terms[-1]} {op} {size} = {answer}\n#### {answer}"
        if step > 0
        else f"{terms[0]} - {terms[1]} = {size}\n{terms[-1]} {op} {size} = {answer}\n#### {answer}"
    )
    return {
        "prompt": f"Next: {', '.join(map(str, terms))}?",
        "solution": solution,
        "answer": str(answer),
        "level": level,
        "difficulty": {"max_step": max_step, "max_start": max_start, "decreasing": step < 0},
    }


# --------------------------------------------------------------------------- compare

#: Compare levels: the largest number shown (1, 2 or 3 digits).
COMPARE_LEVELS: tuple[int, ...] = (9, 99, 999)


def compare_problem(rng: random.Random, level: int = 1) -> dict[str, Any]:
    """Pick the largest or smallest of four distinct numbers (multiple choice)."""
    max_number = COMPARE_LEVELS[level - 1]
    numbers = rng.sample(range(1, max_number + 1), 4)
    largest = rng.random() < 0.5
    target = max(numbers) if largest else min(numbers)
    word = "Largest" if largest else "Smallest"
    # Each choice is the assistant's whole reply, in the same "#### N" form as the
    # generative tasks, so log-likelihoods are compared on the format the model knows.
    return {
        "prompt": f"{word}: {', '.join(map(str, numbers))}?",
        "solution": f"#### {target}",
        "answer": str(target),
        "choices": [f"#### {x}" for x in numbers],
        "label": numbers.index(target),
        "level": level,
        "difficulty": {"max_number": max_number},
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
#: the corpus never uses the test's wording.
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
#: Facts are graded by how often the pretraining corpus states them: level 1 facts appear
#: ``FACT_REPEATS[0]`` times, level 3 once (entities are split into three equal tiers).
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
    """A multiple-choice question on one fact (the true value and three distractors)."""
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
        "difficulty": {"attribute": attribute, "entity": entity["name"]},
    }


def fact_statement(
    rng: random.Random, entity: dict[str, str], attribute: str, level: int = 1
) -> dict[str, Any]:
    """One corpus line stating a fact, in a wording the test never uses (with choices and
    label too, so a train split has the test split's columns, as lm-eval's loader needs)."""
    item = fact_question(rng, entity, attribute, level)
    return {**item, "prompt": rng.choice(FACT_STATEMENTS[attribute]).format(e=entity["name"])}


# --------------------------------------------------------------------------- public entry


def generate(
    family: str, n: int, seed: int | str, difficulties: list[Difficulty] | None = None
) -> list[dict[str, Any]]:
    """``n`` problems of one family. ``difficulties`` (arith only) are cycled in order,
    so a mixed set holds each level in equal parts; other families cycle their levels."""
    rng = seeded_rng(family, seed)
    if family == "arith":
        levels = difficulties or [Difficulty()]
        return [arith_problem(rng, levels[i % len(levels)], level=i % len(levels) + 1) for i in range(n)]
    if family == "math":
        kinds = list(MATH_KINDS)
        return [math_problem(rng, kinds[i % len(kinds)]) for i in range(n)]
    if family == "sequence":
        return [sequence_problem(rng, i % len(SEQUENCE_LEVELS) + 1) for i in range(n)]
    if family == "compare":
        return [compare_problem(rng, i % len(COMPARE_LEVELS) + 1) for i in range(n)]
    if family == "facts":
        entities = fact_entities()
        attributes = list(FACT_ATTRIBUTES)
        return [
            fact_question(
                rng,
                entities[i % len(entities)],
                attributes[(i // len(entities)) % 3],
                fact_level(i % len(entities)),
            )
            for i in range(n)
        ]
    raise ValueError(f"unknown task family {family!r} (known: arith, math, sequence, compare, facts)")
