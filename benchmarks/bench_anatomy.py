"""Memory and time of the weight-update anatomy (oxstudy/anatomy.py).

Target (issue 14): computing the anatomy adds at most one model copy of peak memory and takes
under 10% of a cell's time.

Two ways to get the base weights are measured, each in a fresh process (peak RSS is per process):

- ``stream``: base tensors read one at a time from the base checkpoint's safetensors
  (``safe_open``; what the worker does);
- ``copy``: a CPU copy of the base parameters taken before training (one extra model copy by
  construction), then compared.

"Extra peak" is the process's peak RSS after the anatomy minus its RSS with the trained model
loaded (before the anatomy). Models: the largest zoo model (its built checkpoint when present,
else its architecture randomly initialised: the anatomy's cost depends on shapes only) and a
Qwen2-shaped random model of ~0.1B parameters, where one model copy (~0.4 GB) stands well clear
of allocator noise. "Training" is simulated by adding small noise to every parameter.

    .venv/bin/python benchmarks/bench_anatomy.py            # both models, both modes
    .venv/bin/python benchmarks/bench_anatomy.py --study studies/sft-vs-rl-cpu   # + share of cell time
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_bytes() -> int:
    """Peak RSS since the last :func:`_reset_peak` (VmHWM), else since the process started."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS counter to the current RSS (Linux >= 4.0: ``echo 5 > clear_refs``)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def child(model_dir: str, mode: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from oxstudy.anatomy import SafetensorsWeights, StateDictWeights, weight_update_anatomy

    torch.set_num_threads(1)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    base = StateDictWeights.copy_of(model) if mode == "copy" else None
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 1e-3)
    model_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    before = _rss_bytes() - (model_bytes if mode == "copy" else 0)  # the copy counts as the anatomy's memory
    reset = _reset_peak()  # so loading's transient peak is not counted
    peak_before = _peak_bytes() if not reset else 0
    started = time.perf_counter()
    weights = base if mode == "copy" else SafetensorsWeights(model_dir)
    anatomy = weight_update_anatomy(model, weights)
    weights.close()
    seconds = time.perf_counter() - started
    peak = max(_peak_bytes(), peak_before)
    print(
        json.dumps(
            {
                "mode": mode,
                "params": sum(p.numel() for p in model.parameters()),
                "model_bytes": model_bytes,
                "extra_peak_bytes": max(0, peak - before),
                "seconds": seconds,
                "record_bytes": len(json.dumps(anatomy)),
            }
        )
    )


def _random_model(config: dict, directory: Path) -> Path:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**config))
    model.save_pretrained(directory)
    return directory


def _largest_zoo(tmp: Path) -> tuple[str, Path]:
    from oxstudy.zoo import ZOO, is_built, model_dir

    name = list(ZOO)[-1]
    if is_built(name):
        return f"zoo:{name} (built checkpoint)", model_dir(name)
    c = ZOO[name]
    config = {
        "model_type": "llama",
        "vocab_size": c.vocab_size,
        "hidden_size": c.hidden_size,
        "intermediate_size": c.intermediate_size,
        "num_hidden_layers": c.num_layers,
        "num_attention_heads": c.num_heads,
        "num_key_value_heads": c.num_heads,
        "max_position_embeddings": c.max_positions,
        "tie_word_embeddings": True,
    }
    return f"zoo:{name} architecture (random init: not built here)", _random_model(config, tmp / name)


QWEN2_SHAPED = {
    "model_type": "qwen2", "vocab_size": 32000, "hidden_size": 768, "intermediate_size": 2048,
    "num_hidden_layers": 12, "num_attention_heads": 12, "num_key_value_heads": 2,
    "max_position_embeddings": 512, "tie_word_embeddings": True,
}  # fmt: skip


def study_share(study: Path) -> None:
    rows = []
    for path in sorted((study / "runs").glob("*.json")):
        record = json.loads(path.read_text())
        timings = record.get("timings") or {}
        if record.get("status") == "done" and "anatomy_s" in timings:
            rows.append((timings["anatomy_s"], timings.get("measure_s"), timings["total_s"]))
    if not rows:
        print(f"{study}: no done runs with anatomy timings")
        return
    anatomy = [a / t for a, _, t in rows]
    measure = [m / t for _, m, t in rows if m is not None]
    print(
        f"{study}: {len(rows)} cells; anatomy / cell time: median {sorted(anatomy)[len(anatomy) // 2]:.2%}, "
        f"max {max(anatomy):.2%}; all post-training measurements (anatomy, KL, pass@k, base eval) / cell: "
        f"median {sorted(measure)[len(measure) // 2]:.1%}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=2, metavar=("MODEL_DIR", "MODE"), help=argparse.SUPPRESS)
    parser.add_argument("--study", type=Path, help="also report the anatomy's share of real cells' time")
    parser.add_argument("--skip-large", action="store_true", help="only the zoo model")
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        models = [_largest_zoo(Path(tmp))]
        if not args.skip_large:
            models.append(("Qwen2-shaped random model", _random_model(QWEN2_SHAPED, Path(tmp) / "qwen2")))
        for label, directory in models:
            for mode in ("stream", "copy"):
                out = (
                    subprocess.run(
                        [sys.executable, __file__, "--child", str(directory), mode],
                        check=True,
                        capture_output=True,
                        text=True,
                    )
                    .stdout.strip()
                    .splitlines()[-1]
                )
                r = json.loads(out)
                print(
                    f"{label}: {r['params'] / 1e6:.1f}M params, model {r['model_bytes'] / 2**20:.0f} MiB | {mode:6s}: "
                    f"extra peak {r['extra_peak_bytes'] / 2**20:.0f} MiB = {r['extra_peak_bytes'] / r['model_bytes']:.2f} "
                    f"model copies, {r['seconds']:.2f} s, record {r['record_bytes'] / 1024:.1f} KiB"
                )
    if args.study:
        study_share(args.study)


if __name__ == "__main__":
    main()
