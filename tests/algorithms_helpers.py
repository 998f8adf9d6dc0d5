"""Shared builders for the algorithm tests: a throwaway tiny Llama and real plan cells.

The tiny model is a randomly initialised 2-layer Llama (hidden 32) with the zoo's tokenizer
recipe and chat template: big enough to run every TRL trainer for real, small enough that a
training step takes milliseconds on one core.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from oxstudy.plan import Cell, ResolvedAlgorithm
from oxstudy.spec import DataSpec, ExecutionSpec, LoraSpec, ModelSpec, PreferenceSpec, TrainingSpec


def build_tiny_model(directory: Path, seed: int = 0) -> Path:
    """Save a tiny random Llama + BPE tokenizer to ``directory`` and return it."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from oxstudy.tasks import task_split
    from oxstudy.zoo import train_tokenizer

    pairs = [(e["prompt"], e["solution"]) for e in task_split("oxs_arith", "pretrain", 300)]
    tokenizer = train_tokenizer(pairs, vocab_size=300)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
        tie_word_embeddings=True, bos_token_id=None, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


TINY_TRAINING: dict[str, Any] = dict(
    learning_rate=1e-3, epochs=1.0, effective_batch_size=4, per_device_batch_size=4, warmup_ratio=0.0,
    lr_scheduler="constant", max_length=96, max_prompt_length=48, max_completion_length=12,
    max_steps=2, logging_steps=1,
)


def make_cell(method: str, *, seed: int = 0, hyperparameters: dict[str, Any] | None = None,
              finetune: str = "full", training: dict[str, Any] | None = None,
              data: dict[str, Any] | None = None, gpus_per_run: int = 0, algorithm_id: str | None = None) -> Cell:
    """A real :class:`oxstudy.plan.Cell` for a tiny run of ``method``."""
    from oxstudy.algorithms import registry

    data = dict(data or {})
    preference = PreferenceSpec(**{"samples_per_prompt": 2, "max_new_tokens": 12, **data.pop("preference", {})})
    data_spec = DataSpec(**{"source": "task:oxs_arith", "train_size": 8, **data}, preference=preference)
    return Cell(
        run_id="0" * 16, study="algorithms-test",
        model=ModelSpec(id="tiny", source="zoo:tiny", finetune=finetune,
                        lora=LoraSpec(r=4, alpha=8, dropout=0.0) if finetune == "lora" else None),
        algorithm=ResolvedAlgorithm(id=algorithm_id or method, method=method,
                                    hyperparameters=registry.resolve_hyperparameters(method, hyperparameters)),
        seed=seed, training=TrainingSpec(**{**TINY_TRAINING, **(training or {})}), data=data_spec,
        benchmarks=[], execution=ExecutionSpec(gpus_per_run=gpus_per_run),
    )
