"""pass@k: the unbiased estimator (oxstudy/stats/passk.py) and lm-eval's repeats path (oxstudy/passk.py)."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from oxstudy.stats.passk import default_ks, pass_at_k, pass_at_k_curve, pass_at_k_table


def closed_form(n: int, c: int, k: int) -> float:
    """Chen et al. (2021), eq. 1, with exact integers: 1 - C(n-c, k) / C(n, k)."""
    return float(1 - Fraction(math.comb(n - c, k), math.comb(n, k)))


def test_estimator_equals_closed_form_on_hand_made_counts() -> None:
    for n in (1, 2, 5, 8, 17, 64):
        counts = sorted({0, 1, n // 3, n // 2, n - 1, n} & set(range(n + 1)))
        for k in range(1, n + 1):
            values = pass_at_k(n, counts, k)
            for c, value in zip(counts, values, strict=True):
                assert value == pytest.approx(closed_form(n, c, k), abs=1e-12), (n, c, k)
    # hand-computed: n=4, c=1 -> pass@1 = 1/4, pass@2 = 1 - C(3,2)/C(4,2) = 1/2, pass@4 = 1
    assert pass_at_k(4, [1], 1)[0] == pytest.approx(0.25)
    assert pass_at_k(4, [1], 2)[0] == pytest.approx(0.5)
    assert pass_at_k(4, [1], 4)[0] == 1.0
    assert pass_at_k(4, [0], 4)[0] == 0.0


def test_estimator_is_stable_where_binomials_overflow_floats() -> None:
    n, c, k = 2000, 37, 500  # C(2000, 500) ~ 1e486: far beyond float range
    assert pass_at_k(n, [c], k)[0] == pytest.approx(closed_form(n, c, k), rel=1e-9)
    assert pass_at_k(n, [c], 1)[0] == pytest.approx(c / n, rel=1e-12)  # pass@1 is the sample mean


def test_aggregation_and_curve() -> None:
    correct = [0, 3, 8, 1]
    table = pass_at_k_table(8, correct)
    assert list(table) == list(range(1, 9))
    curve = pass_at_k_curve(8, correct, [1, 4, 8])
    assert curve[1] == pytest.approx(np.mean([0, 3 / 8, 1, 1 / 8]))
    assert curve[4] == pytest.approx(np.mean([closed_form(8, c, 4) for c in correct]))
    assert curve[8] == pytest.approx(0.75)  # the share of items with any correct sample
    assert default_ks(64) == [1, 2, 4, 8, 16, 32, 64] and default_ks(6) == [1, 2, 4, 6]
    with pytest.raises(ValueError, match="exceeds"):
        pass_at_k(4, [1], 5)
    with pytest.raises(ValueError, match="0 <= c <= n"):
        pass_at_k(4, [5], 1)


def _independent_counts(model, tokenizer, items, *, samples: int, temperature: float, seed: int) -> list[int]:
    """A plain sampling loop: model.generate per item, cut at the task's stop strings, scored by
    the bundled verifier (strict: the number after ####)."""
    import torch

    from oxstudy.tasks.verifier import is_correct

    torch.manual_seed(seed)
    counts = []
    for item in items:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": item["prompt"]}], tokenize=False, add_generation_prompt=True
        )
        ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"].repeat(samples, 1)
        with torch.no_grad():
            out = model.generate(
                ids,
                do_sample=True,
                temperature=temperature,
                max_new_tokens=64,
                pad_token_id=tokenizer.pad_token_id,
            )
        completions = tokenizer.batch_decode(out[:, ids.shape[1] :], skip_special_tokens=False)
        correct = 0
        for completion in completions:
            for stop in ("<|end|>", "<|user|>", "\n\n"):
                completion = completion.split(stop)[0]
            correct += is_correct(completion, item["answer"], strict=True)
        counts.append(correct)
    return counts


@pytest.mark.slow
def test_lm_eval_repeats_path_matches_an_independent_sampling_loop(zoo_tiny) -> None:
    """Same model, task, temperature and n: lm-eval's repeats path and a hand-written loop give
    statistically consistent correct counts.

    Not sample-for-sample equal: lm-eval seeds torch once and samples requests in its own
    batching order (sorted by length, batched with padding), so the two RNG streams differ.
    Checked instead (Fisher exact tests at 0.001): the pooled success rates (pass@1) agree, the
    shares of items solved at least once (pass@n) agree, and the same items are the easy ones
    (positive rank correlation of per-item counts). With 16 items and a 4-layer model this only
    catches gross differences (e.g. greedy decoding, a lost temperature, mis-scored samples).
    """
    import torch
    from scipy import stats
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from oxstudy.passk import PassAtKSettings, sample_correct_counts
    from oxstudy.spec import BenchmarkSpec
    from oxstudy.tasks import task_split

    torch.set_num_threads(1)  # one thread: on a shared 2-core machine more threads are far slower
    tokenizer = AutoTokenizer.from_pretrained(zoo_tiny)
    model = AutoModelForCausalLM.from_pretrained(zoo_tiny).eval()
    n, items, temperature = 8, 16, 0.4
    bench = BenchmarkSpec(id="arith", task="oxs_arith", limit=items, in_domain=True)
    via_lm_eval = sample_correct_counts(
        model, tokenizer, bench, PassAtKSettings(samples=n, temperature=temperature, seed=0)
    )
    docs = task_split("oxs_arith", "test", items)
    assert via_lm_eval["doc_id"] == list(range(items))
    loop = _independent_counts(model, tokenizer, docs, samples=n, temperature=temperature, seed=0)
    lm = np.array(via_lm_eval["correct"])
    hand = np.array(loop)
    assert lm.sum() >= 4 and hand.sum() >= 4, (lm, hand)  # some successes for the comparison to bite
    assert ((lm > 0) & (lm < n)).any(), lm  # sampled: not all-or-nothing per item as greedy decoding would be
    table = [[lm.sum(), n * items - lm.sum()], [hand.sum(), n * items - hand.sum()]]
    assert stats.fisher_exact(table).pvalue > 0.001, (lm, hand)
    assert stats.spearmanr(lm, hand).statistic > 0, (lm, hand)  # the same items are the easy ones
    # pass@n is the share of items with any correct sample: the same test on items instead of samples
    solved = [[int((lm > 0).sum()), int((lm == 0).sum())], [int((hand > 0).sum()), int((hand == 0).sum())]]
    assert stats.fisher_exact(solved).pvalue > 0.001, (lm, hand)
    assert pass_at_k(n, lm, 1).mean() == pytest.approx(
        lm.sum() / (n * items)
    )  # pass@1 = the sample success rate


def test_alignment_base_pass_at_k_is_sampled_once_per_model_and_task_and_tabled(zoo_tiny, tmp_path) -> None:
    """analysis.alignment -> every cell's measure.alignment; the worker's base_alignment samples the base
    model once per (model, generative benchmark), caches the counts, and writes the study table the
    report's alignment section reads (values = the closed form on the cached counts)."""
    import json

    import torch

    import oxstudy.passk
    from oxstudy.claims_regime import load_alignment
    from oxstudy.passk import base_alignment
    from oxstudy.plan import expand_cells
    from oxstudy.spec import load_spec_data
    from oxstudy.training import load_model

    torch.set_num_threads(1)
    spec = load_spec_data({
        "name": "align", "models": [{"id": "tiny", "source": zoo_tiny}],
        "algorithms": [{"id": "GRPO", "method": "grpo"}, {"id": "NSR", "method": "nsr"}], "seeds": [1],
        "data": {"source": "task:oxs_arith", "train_size": 8},
        "benchmarks": [{"id": "arith", "task": "oxs_arith", "in_domain": True, "limit": 6},
                       {"id": "compare", "task": "oxs_compare", "metric": "acc,none", "limit": 6}],
        "analysis": {"alignment": {"k": [1, 4], "samples": 4, "standard": "GRPO", "shortcuts": ["NSR"]}},
    }, base_dir=tmp_path)
    cells, _ = expand_cells(spec)
    assert all(c.measure.alignment is not None and c.measure.alignment.samples == 4 for c in cells)
    model, tokenizer = load_model(zoo_tiny, "cpu", "fp32")
    real, calls = oxstudy.passk.sample_correct_counts, []

    def counted(*args, **kwargs):
        calls.append(args[2].id)
        return real(*args, **kwargs)

    oxstudy.passk.sample_correct_counts = counted
    try:
        rows = [base_alignment(model, tokenizer, c, zoo_tiny, tmp_path / "alignment", c.measure.alignment)
                for c in cells]
    finally:
        oxstudy.passk.sample_correct_counts = real
    assert calls == ["arith"]  # the multiple-choice benchmark is not sampled; the second cell reads the cache
    assert rows[0] == rows[1] and {(r["benchmark"], r["k"]) for r in rows[0]} == {("arith", 1), ("arith", 4)}
    cached = json.loads(next((tmp_path / "alignment" / "cache").glob("*.json")).read_text())
    for row in rows[0]:
        expected = np.mean([closed_form(4, c, row["k"]) for c in cached["correct"]])
        assert row["pass_at_k"] == pytest.approx(expected) and row["n_items"] == 6
    table = load_alignment(str(tmp_path / "alignment" / "base_pass_at_k.json"), tmp_path, 4)
    assert table.to_dict("records") == [{"model": "tiny", "task": "arith", "pass_at_k": rows[0][1]["pass_at_k"]}]
