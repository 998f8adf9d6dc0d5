"""lm-eval hook of the math_numeric task: keep MATH problems whose answer is a plain number."""

import re

NUMERIC = re.compile(r"^-?\d+(\.\d+)?$")


def numeric_docs(dataset):
    """The documents whose ``expected_answer`` (commas and spaces removed) is an integer or decimal."""
    return dataset.filter(lambda doc: bool(NUMERIC.match(str(doc["expected_answer"]).replace(",", "").strip())))
