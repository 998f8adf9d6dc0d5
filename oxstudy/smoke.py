"""Smoke mode: any spec, shrunk to run on a laptop CPU in minutes.

``oxstudy run SPEC --smoke`` keeps the spec's algorithms (methods, hyperparameters),
model ids and fine-tuning modes, benchmark ids and analysis, and replaces what needs a
GPU or the hub: every base model becomes a zoo model (the smallest for the smallest
scale, and so on up the ladder), every benchmark a bundled
task (in-domain ones the training-domain task), the data the bundled generator, truncated,
with two optimizer steps per run and the first seed only. Results go to a separate study
directory (``<output>-smoke``) so they never mix with the real study.
"""

from __future__ import annotations

from typing import Any

from oxstudy.spec import StudySpec, load_spec_data

SMOKE_TRAINING = {
    "learning_rate": 1e-4, "epochs": 1.0, "effective_batch_size": 4, "per_device_batch_size": 4,
    "max_length": 128, "max_prompt_length": 64, "max_completion_length": 32, "precision": "auto",
    "max_steps": 2, "gradient_checkpointing": False,
}  # fmt: skip
#: Out-of-domain replacements, cycled: one generative, one multiple-choice.
SMOKE_OOD = [("oxs_sequence", "exact_match,strict-match"), ("oxs_compare", "acc,none")]
SMOKE_ITEMS = 16
SMOKE_PASS_SAMPLES, SMOKE_PASS_ITEMS = 4, 8


def smoke_spec(spec: StudySpec) -> StudySpec:
    data: dict[str, Any] = spec.model_dump(mode="json", exclude_none=True)
    data.pop("extends", None)
    data["name"] = f"{spec.name}-smoke"
    data["output_dir"] = str(spec.store_dir.with_name(spec.store_dir.name + "-smoke").resolve())
    data["seeds"] = spec.seeds[:1]
    # Distinct base models map onto the zoo ladder in order of size (tiny, small, medium),
    # so a scaling study keeps its scales; models sharing a source share a zoo model.
    from oxstudy.zoo import zoo_names

    ladder = zoo_names()
    sources = sorted({m.source for m in spec.models},
                     key=lambda src: min((m.params or 0, i) for i, m in enumerate(spec.models) if m.source == src))
    zoo_for = {src: f"zoo:{ladder[min(i, len(ladder) - 1)]}" for i, src in enumerate(sources)}
    for model in data["models"]:
        model["source"] = zoo_for[model["source"]]
        model.pop("params", None)
        model.pop("revision", None)  # hub revisions do not apply to zoo models
        model["family"] = "zoo"
        model.pop("training", None)  # scale-specific settings (lr, batch) do not apply to the zoo
    for algorithm in data["algorithms"]:
        training = algorithm.get("training") or {}
        for key in SMOKE_TRAINING:
            training.pop(key, None)
        algorithm["training"] = training or None
        hyperparameters = algorithm.get("hyperparameters") or {}
        if "num_generations" in hyperparameters:
            hyperparameters["num_generations"] = 2
    data["training"] = {**data.get("training", {}), **SMOKE_TRAINING}
    _smoke_arm_data(spec, data)
    data["data"] = {
        "source": "task:oxs_arith",
        "train_size": 8,
        "preference": {"mode": "self-play", "samples_per_prompt": 2, "temperature": 1.0, "max_new_tokens": 32},
        "reward": data.get("data", {}).get("reward", {}),
    }
    ood = 0
    for benchmark in data["benchmarks"]:
        if benchmark.get("in_domain"):
            task, metric = "oxs_arith", "exact_match,strict-match"
        else:
            task, metric = SMOKE_OOD[ood % len(SMOKE_OOD)]
            ood += 1
        benchmark.update(task=task, metric=metric, num_fewshot=0, limit=SMOKE_ITEMS, apply_chat_template=True,
                         fewshot_as_multiturn=False, gen_kwargs={}, backend=None)
        if benchmark.get("pass_at_k"):  # a few samples of a few items (oxstudy/passk.py)
            ks = [k for k in benchmark["pass_at_k"].get("k", []) if k <= SMOKE_PASS_SAMPLES]
            benchmark["pass_at_k"].update(samples=SMOKE_PASS_SAMPLES, k=ks, limit=SMOKE_PASS_ITEMS)
            if task != "oxs_arith":
                benchmark.pop("pass_at_k")
    data.setdefault("measure", {}).update(effective_rank=min(data["measure"].get("effective_rank", 0), 4))
    data["measure"].setdefault("kl_drift", {}).update(prompts=None, n=8, max_new_tokens=16)
    if data["measure"].get("eval_every"):  # evaluations during training: one, after the first of the 2 steps
        data["measure"].update(eval_every=1, eval_limit=SMOKE_ITEMS)
    alignment = data.get("analysis", {}).get("alignment")
    if alignment:  # the base pass@k of model-task alignment: as few samples as the pass@k smoke
        ks = [k for k in alignment.get("k", [1, 16]) if k <= SMOKE_PASS_SAMPLES] or [1]
        alignment.update(samples=SMOKE_PASS_SAMPLES, k=ks, base_pass_at_k=None)
        if alignment.get("measure_k") not in ks:
            alignment["measure_k"] = max(ks)
    data["evaluation"] = {**data.get("evaluation", {}), "backend": "hf"}  # a CPU run: no vLLM
    data["execution"] = {**data.get("execution", {}), "backend": "local", "gpus_per_run": 0, "retries": 0,
                         "max_parallel": 2, "timeout_s": 900,
                         "rollouts": {**data.get("execution", {}).get("rollouts", {}), "use_vllm": False}}
    if data.get("analysis", {}).get("claims"):
        data["analysis"]["claims"] = str(spec.resolve_path(data["analysis"]["claims"]))
    data["exclude"] = [e for e in data.get("exclude", []) if e.get("seed") in (None, *data["seeds"])]
    return load_spec_data(data, base_dir=spec.base_dir)


def _smoke_arm_data(spec: StudySpec, data: dict[str, Any]) -> None:
    """Per-arm data overrides (issue 13) on bundled tasks: a source other than the study's becomes
    oxs_sequence (so two training sets stay two), field mappings go, rules by id become the first
    example, and curriculum stages take one step each."""
    for algorithm in data["algorithms"]:
        arm = algorithm.get("data")
        if not arm:
            continue
        if arm.get("source") is not None:
            arm["source"] = "task:oxs_arith" if arm["source"] == spec.data.source else "task:oxs_sequence"
            for key in ("config", "split", "fields"):
                arm.pop(key, None)
        arm.pop("train_size", None)
        select = arm.get("select") or {}
        if select.get("rule") == "ids":
            select.update(rule="indices", indices=[0])
            select.pop("ids", None)
        if select.get("size"):
            select["size"] = min(select["size"], 4)
        stages = (arm.get("curriculum") or {}).get("stages")
        if stages:
            for stage in stages:
                stage["steps"] = 1
            algorithm["training"] = {**(algorithm.get("training") or {}), "max_steps": len(stages)}
