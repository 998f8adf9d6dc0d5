"""Regenerate the field tables of docs/spec.md from the pydantic models (run after changing spec.py)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from oxstudy import spec as s

SECTIONS = [
    ("StudySpec", s.StudySpec), ("ModelSpec (`models[]`)", s.ModelSpec), ("LoraSpec (`models[].lora`)", s.LoraSpec),
    ("AlgorithmSpec (`algorithms[]`)", s.AlgorithmSpec), ("TrainingSpec (`training`, and overrides)", s.TrainingSpec),
    ("DataSpec (`data`)", s.DataSpec), ("PreferenceSpec (`data.preference`)", s.PreferenceSpec),
    ("DatasetSource (`data.preference.dataset`)", s.DatasetSource), ("RewardSpec (`data.reward`, `algorithms[].reward`)", s.RewardSpec),
    ("SelectSpec (`data.select`)", s.SelectSpec), ("CurriculumSpec (`data.curriculum`)", s.CurriculumSpec),
    ("CurriculumStage (`data.curriculum.stages[]`)", s.CurriculumStage),
    ("ArmDataSpec (`algorithms[].data`)", s.ArmDataSpec),
    ("BenchmarkSpec (`benchmarks[]`)", s.BenchmarkSpec), ("EvaluationSpec (`evaluation`)", s.EvaluationSpec),
    ("AnalysisSpec (`analysis`)", s.AnalysisSpec),
    ("AlignmentSpec (`analysis.alignment`)", s.AlignmentSpec), ("RegimeSpec (`analysis.regime`)", s.RegimeSpec),
    ("ExecutionSpec (`execution`)", s.ExecutionSpec),
    ("RolloutSpec (`execution.rollouts`)", s.RolloutSpec), ("RaySpec (`execution.ray`)", s.RaySpec),
    ("SlurmSpec (`execution.slurm`)", s.SlurmSpec), ("Exclusion (`exclude[]`)", s.Exclusion),
    ("ParamSelection (`training.freeze`, `training.trainable`)", s.ParamSelection),
    ("PassAtKSpec (`benchmarks[].pass_at_k`)", s.PassAtKSpec), ("MeasureSpec (`measure`)", s.MeasureSpec),
    ("KLDriftSpec (`measure.kl_drift`)", s.KLDriftSpec),
]  # fmt: skip


def type_name(annotation) -> str:
    text = getattr(annotation, "__name__", None) or str(annotation)
    text = re.sub(r"typing\.|oxstudy\.spec\.|<class '|'>", "", str(annotation) if "[" in str(annotation) else text)
    return text.replace("NoneType", "None").replace(" | ", " or ")


def default(info) -> str:
    if info.is_required():
        return "required"
    if info.default_factory is not None:
        value = info.default_factory()
        return "{}" if value == {} else "[]" if value == [] else "(defaults)"
    return f"`{info.default!r}`" if info.default is not None else "None"


def tables() -> str:
    out = []
    for title, model in SECTIONS:
        out.append(f"### {title}\n\n| field | type | default | meaning |\n|---|---|---|---|")
        for name, info in model.model_fields.items():
            out.append(f"| `{name}` | {type_name(info.annotation)} | {default(info)} | {info.description or ''} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    path = Path(__file__).resolve().parents[1] / "docs" / "spec.md"
    text = path.read_text()
    start, end = "<!-- fields:start -->", "<!-- fields:end -->"
    new = text[: text.index(start) + len(start)] + "\n" + tables() + text[text.index(end):]
    path.write_text(new)
    print(f"wrote {path}", file=sys.stderr)
