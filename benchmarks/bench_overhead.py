"""Overhead of oxstudy's training path over a plain TRL script.

One DPO cell on a zoo model, trained (a) through :func:`oxstudy.training.train_cell` and (b) by
a plain TRL script that builds the identical ``DPOConfig`` by hand, loads the same model and
trains on the same pairs. Runs alternate (a, b, a, b, ...) so machine load hits both alike;
the median wall times (model loading + trainer construction + training) and their ratio are
printed, and the final losses must be equal.

Usage: python benchmarks/bench_overhead.py [--model tiny] [--steps 20] [--repeats 3] [--threads 1]
Target: oxstudy adds under 10%.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")


def make_cell(steps: int):
    from oxstudy.plan import Cell, ResolvedAlgorithm
    from oxstudy.spec import DataSpec, ExecutionSpec, ModelSpec, PreferenceSpec, TrainingSpec

    return Cell(
        run_id="bench", study="bench-overhead", model=ModelSpec(id="m", source="zoo:tiny"),
        algorithm=ResolvedAlgorithm(id="dpo", method="dpo", hyperparameters={}), seed=0,
        training=TrainingSpec(learning_rate=5e-5, effective_batch_size=8, per_device_batch_size=8,
                              max_steps=steps, max_length=128, max_completion_length=64, warmup_ratio=0.1),
        data=DataSpec(source="task:oxs_arith", train_size=64,
                      preference=PreferenceSpec(samples_per_prompt=4, max_new_tokens=48)),
        benchmarks=[], execution=ExecutionSpec(),
    )


def plain_trl(model_path: str, pairs: list[dict], steps: int, output_dir: str) -> float:
    """The same run written directly against TRL (no oxstudy code)."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed
    from trl import DPOConfig, DPOTrainer

    set_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    dataset = Dataset.from_list([{"prompt": [{"role": "user", "content": p["prompt"]}],
                                  "chosen": [{"role": "assistant", "content": p["chosen"]}],
                                  "rejected": [{"role": "assistant", "content": p["rejected"]}]} for p in pairs])
    config = DPOConfig(
        output_dir=output_dir, learning_rate=5e-5, num_train_epochs=3.0, max_steps=steps,
        per_device_train_batch_size=8, gradient_accumulation_steps=1, warmup_steps=0.1,
        lr_scheduler_type="cosine", adam_beta1=0.9, adam_beta2=0.95, adam_epsilon=1e-8, weight_decay=0.01,
        optim="adamw_torch", seed=0, data_seed=0, logging_steps=1, logging_first_step=True,
        logging_nan_inf_filter=False, save_strategy="no", report_to="none", disable_tqdm=True,
        dataloader_num_workers=0, gradient_checkpointing=False, bf16=False, fp16=False, use_cpu=True,
        loss_type=["sigmoid"], max_length=128, beta=0.1, disable_dropout=True,
    )
    trainer = DPOTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer)
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # as oxstudy does: printing logs is not training time
    trainer.train()
    return [log["loss"] for log in trainer.state.log_history if "loss" in log][-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="zoo model name")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 avoids contention noise)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    import datasets
    import transformers

    from oxstudy.selfplay import prepare_data
    from oxstudy.training import train_cell
    from oxstudy.zoo import build

    datasets.disable_progress_bars()
    transformers.utils.logging.set_verbosity_error()
    model_path = str(build(args.model))
    cell = make_cell(args.steps)
    with tempfile.TemporaryDirectory() as scratch:
        data = prepare_data(cell, model_path, cache_dir=Path(scratch) / "selfplay")
        print(f"model {args.model} ({model_path}); {len(data.pairs)} self-play pairs; {args.steps} steps; "
              f"{args.repeats} repeats; torch threads {args.threads}")
        plain_trl(model_path, data.pairs, 2, f"{scratch}/warm")  # warm imports and caches for both
        ox_times, trl_times, ox_losses, trl_losses = [], [], [], []
        for repeat in range(args.repeats):
            started = time.perf_counter()
            result = train_cell(cell, model_path=model_path, output_dir=f"{scratch}/ox{repeat}", data=data)
            ox_times.append(time.perf_counter() - started)
            ox_losses.append(result.final_loss)
            started = time.perf_counter()
            trl_losses.append(plain_trl(model_path, data.pairs, args.steps, f"{scratch}/trl{repeat}"))
            trl_times.append(time.perf_counter() - started)
    ox, plain = statistics.median(ox_times), statistics.median(trl_times)
    ratio = ox / plain
    print(f"oxstudy train_cell: median {ox:.2f} s  (runs: {', '.join(f'{t:.2f}' for t in ox_times)})")
    print(f"plain TRL script:   median {plain:.2f} s  (runs: {', '.join(f'{t:.2f}' for t in trl_times)})")
    print(f"ratio oxstudy / TRL: {ratio:.3f}  (overhead {100 * (ratio - 1):+.1f}%, target < +10%)")
    equal = all(a == b for a, b in zip(ox_losses, trl_losses, strict=True))
    print(f"final losses: oxstudy {ox_losses[0]:.6f}, TRL {trl_losses[0]:.6f} -> {'equal' if equal else 'DIFFERENT'}")
    return 0 if equal else 1


if __name__ == "__main__":
    sys.exit(main())
