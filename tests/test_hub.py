"""Hub models and ``hf:`` datasets: pre-flight download, offline cache, pinned revisions, errors.

There is no network here, so the hub is a local cache in huggingface_hub's real layout
(``models--org--name/{refs/main, snapshots/<sha>/..., blobs/}``, snapshot files symlinked to
blobs) holding a copy of a zoo model, read by the real ``snapshot_download``. Online behaviour
is exercised at the ``huggingface_hub.snapshot_download`` boundary only: a stand-in that raises
the real exception classes, or "downloads" by writing the same layout while driving the
progress-bar class it was given (and reads the cache with the real function otherwise).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx2
import huggingface_hub
import pytest
from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

from oxstudy import hub
from oxstudy.errors import OxstudyError, ResourceError
from oxstudy.zoo import resolve_model_source

REPO = Path(__file__).resolve().parents[1]
REAL_SNAPSHOT_DOWNLOAD = huggingface_hub.snapshot_download


def fake_commit(label: str) -> str:
    return hashlib.sha1(label.encode()).hexdigest()


def put_snapshot(
    cache: Path,
    repo_id: str,
    files: dict[str, bytes],
    *,
    commit: str,
    repo_type: str = "model",
    refs: tuple[str, ...] = ("main",),
) -> Path:
    """Write one commit of a repo into ``cache`` exactly as huggingface_hub lays it out."""
    folder = cache / f"{repo_type}s--{repo_id.replace('/', '--')}"
    snapshot = folder / "snapshots" / commit
    (folder / "blobs").mkdir(parents=True, exist_ok=True)
    for relative, content in files.items():
        blob = folder / "blobs" / hashlib.sha256(content).hexdigest()
        blob.write_bytes(content)
        target = snapshot / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.is_symlink():  # a re-download of the same commit finds it in place
            target.symlink_to(os.path.relpath(blob, target.parent))
    (folder / "refs").mkdir(exist_ok=True)
    for ref in refs:
        (folder / "refs" / ref).write_text(commit)  # no newline, as huggingface_hub writes it
    return snapshot


def model_files(model_dir: str | Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in Path(model_dir).iterdir() if p.is_file()}


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "hf" / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def go_online(monkeypatch) -> None:
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)


def http_response(status: int, url: str) -> httpx2.Response:
    return httpx2.Response(status, request=httpx2.Request("GET", url))


# ----------------------------------------------------------------------------- offline


def test_offline_cached_model_resolves_to_its_snapshot_and_commit(hub_cache, zoo_tiny):
    old, new = fake_commit("v1"), fake_commit("v2")
    files = model_files(zoo_tiny)
    put_snapshot(hub_cache, "acme/tiny-chat", files, commit=old, refs=("v1",))
    put_snapshot(hub_cache, "acme/tiny-chat", files, commit=new, refs=("main",))

    path = resolve_model_source("acme/tiny-chat")
    assert path == str(hub_cache / "models--acme--tiny-chat" / "snapshots" / new)
    snapshot = hub.resolve("acme/tiny-chat")
    assert snapshot.commit == new and snapshot.provenance()["revision"] == "main"
    # Pinned revisions: a tag from refs/, a commit hash directly.
    assert hub.resolve("acme/tiny-chat", revision="v1").commit == old
    assert resolve_model_source("acme/tiny-chat", revision=old).endswith(old)
    assert hub.source_provenance("acme/tiny-chat", path) == {
        "source": "acme/tiny-chat",
        "repo": "acme/tiny-chat",
        "type": "model",
        "revision": "main",
        "commit": new,
    }

    # The snapshot is a usable model directory (symlinks into blobs/ resolve).
    from transformers import AutoConfig, AutoTokenizer

    assert AutoConfig.from_pretrained(path).model_type == "llama"
    assert AutoTokenizer.from_pretrained(path).chat_template


def test_offline_uncached_model_or_revision_fails_in_one_line(hub_cache, zoo_tiny):
    with pytest.raises(ResourceError) as info:
        resolve_model_source("acme/not-downloaded")
    message = str(info.value)
    assert "\n" not in message and "acme/not-downloaded" in message and "HF_HUB_OFFLINE" in message
    assert "huggingface-cli download acme/not-downloaded" in message and str(hub_cache) in message

    put_snapshot(hub_cache, "acme/tiny-chat", model_files(zoo_tiny), commit=fake_commit("v2"))
    with pytest.raises(ResourceError, match=r"acme/tiny-chat@v9: not in the local"):
        hub.resolve("acme/tiny-chat", revision="v9")


def test_hf_prefixed_model_is_the_hub_id(hub_cache, zoo_tiny):
    """``hf:ID`` is always the hub for a model (spec.source_kind, as for datasets): the prefix
    is not part of the repo id, also for a one-part id such as ``hf:gpt2``."""
    files = model_files(zoo_tiny)
    put_snapshot(hub_cache, "acme/tiny-chat", files, commit=fake_commit("org"))
    put_snapshot(hub_cache, "gpt2", files, commit=fake_commit("bare"))
    path = resolve_model_source("hf:acme/tiny-chat")
    assert path == str(hub_cache / "models--acme--tiny-chat" / "snapshots" / fake_commit("org"))
    assert hub.source_provenance("hf:acme/tiny-chat", path)["repo"] == "acme/tiny-chat"
    assert resolve_model_source("hf:gpt2") == str(
        hub_cache / "models--gpt2" / "snapshots" / fake_commit("bare")
    )

    # Not cached, offline: the same one-line message as for the plain id, naming the repo id.
    with pytest.raises(ResourceError) as info:
        resolve_model_source("hf:acme/not-downloaded")
    message = str(info.value)
    assert message.startswith("model acme/not-downloaded: not in the local Hugging Face cache"), message
    assert "\n" not in message and "huggingface-cli download acme/not-downloaded)" in message
    with pytest.raises(ResourceError, match=r"^model gpt3: not in the local Hugging Face cache"):
        resolve_model_source("hf:gpt3")
    with pytest.raises(ResourceError, match=r"hf:: no repo id after 'hf:'"):
        resolve_model_source("hf:")


# ----------------------------------------------------------------------------- online boundary


class FakeHub:
    """``snapshot_download`` of a hub holding ``repos`` ({repo_id: (commit, files)}): online it
    writes the real cache layout and reports bytes through ``tqdm_class``; with
    ``local_files_only`` it defers to the real function (reads the cache)."""

    def __init__(self, repos: dict[str, tuple[str, dict[str, bytes]]]) -> None:
        self.repos = repos
        self.online_calls: list[dict] = []

    def __call__(
        self,
        repo_id,
        *,
        repo_type=None,
        revision=None,
        cache_dir=None,
        local_files_only=False,
        tqdm_class=None,
        **kwargs,
    ):
        if local_files_only:
            return REAL_SNAPSHOT_DOWNLOAD(
                repo_id,
                repo_type=repo_type,
                revision=revision,
                cache_dir=cache_dir,
                local_files_only=True,
                **kwargs,
            )
        self.online_calls.append(
            {
                "repo_id": repo_id,
                "repo_type": repo_type,
                "revision": revision,
                "cache_dir": cache_dir,
                "tqdm_class": tqdm_class,
                **kwargs,
            }
        )
        commit, files = self.repos[repo_id]
        total = sum(len(c) for c in files.values())
        if tqdm_class is None:
            bar = huggingface_hub.utils.tqdm(total=total, desc="Downloading bytes", unit="B", disable=True)
        else:
            bar = tqdm_class(total=total, desc="Downloading bytes", unit="B")
        for content in files.values():
            bar.update(len(content))
        bar.close()
        snapshot = put_snapshot(
            Path(cache_dir),
            repo_id,
            files,
            commit=commit,
            repo_type=repo_type or "model",
            refs=(revision or "main",),
        )
        return str(snapshot)


def test_online_download_shows_progress_and_workers_reuse_the_cache(hub_cache, zoo_tiny, monkeypatch):
    from rich.console import Console
    from rich.progress import Progress

    go_online(monkeypatch)
    commit = fake_commit("online")
    files = model_files(zoo_tiny)
    fake = FakeHub({"acme/tiny-chat": (commit, files)})
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake)

    with Progress(console=Console(file=open(os.devnull, "w"))) as bars:
        snapshot = hub.resolve("acme/tiny-chat", progress=bars)
        tasks = list(bars.tasks)
    assert snapshot.commit == commit and Path(snapshot.path, "config.json").exists()
    call = fake.online_calls[0]
    assert call["repo_type"] == "model" and call["revision"] is None and call["cache_dir"] == str(hub_cache)
    assert "*.gguf" in call["ignore_patterns"] and call["tqdm_class"] is not None
    assert len(tasks) == 1 and tasks[0].total == tasks[0].completed == sum(len(c) for c in files.values())
    assert "acme/tiny-chat" in tasks[0].description

    # A worker after the pre-flight: the cached snapshot, no second request.
    assert resolve_model_source("acme/tiny-chat", prefer_cache=True) == snapshot.path
    assert len(fake.online_calls) == 1
    # The driver refreshes (one request per `oxstudy run`), as transformers does.
    hub.resolve("acme/tiny-chat")
    assert len(fake.online_calls) == 2


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            GatedRepoError(
                "Access to model acme/llama is restricted.",
                response=http_response(403, "https://huggingface.co/api/models/acme/llama"),
            ),
            ["gated", "huggingface-cli login", "https://huggingface.co/acme/llama"],
        ),
        (
            RepositoryNotFoundError(
                "Repository Not Found for url.",
                response=http_response(404, "https://huggingface.co/api/models/acme/llama"),
            ),
            ["not found on the Hugging Face hub", "huggingface-cli login"],
        ),
        (
            RevisionNotFoundError(
                "Invalid rev id: v7",
                response=http_response(404, "https://huggingface.co/api/models/acme/llama/revision/v7"),
            ),
            ["revision 'v7' not found"],
        ),
    ],
    ids=["gated", "missing", "revision"],
)
def test_online_gated_missing_or_bad_revision_fail_in_one_line(hub_cache, monkeypatch, error, expected):
    go_online(monkeypatch)

    def refuse(repo_id, **kwargs):
        raise error

    monkeypatch.setattr(huggingface_hub, "snapshot_download", refuse)
    with pytest.raises(ResourceError) as info:
        resolve_model_source("acme/llama", revision="v7" if "revision" in expected[0] else None)
    message = str(info.value)
    assert "\n" not in message and message.startswith("model acme/llama")
    for fragment in expected:
        assert fragment in message
    if isinstance(error, GatedRepoError):  # gated is a RepositoryNotFoundError: the gated text must win
        assert "not found" not in message


# ----------------------------------------------------------------------------- datasets


def write_dataset(hub_cache: Path, repo_id: str, commit: str, answers: list[int], refs=("main",)) -> None:
    rows = "".join(
        json.dumps({"question": f"What is {a} + 0?", "answer": f"{a} + 0 = {a}\n#### {a}"}) + "\n"
        for a in answers
    )
    put_snapshot(
        hub_cache, repo_id, {"data/train.jsonl": rows.encode()}, commit=commit, repo_type="dataset", refs=refs
    )


def test_hf_dataset_is_pinned_and_read_from_its_snapshot(hub_cache, monkeypatch):
    from oxstudy.selfplay import load_examples
    from oxstudy.spec import DataSpec

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    old, new = fake_commit("data-v1"), fake_commit("data-v2")
    write_dataset(hub_cache, "acme/sums", old, [1, 2, 3], refs=("v1",))
    write_dataset(hub_cache, "acme/sums", new, [4, 5, 6, 7])
    fields = {"prompt": "question", "solution": "answer"}

    latest = load_examples(DataSpec(source="hf:acme/sums", fields=fields))
    assert [e["answer"] for e in latest] == ["4", "5", "6", "7"]
    pinned = load_examples(DataSpec(source="hf:acme/sums", revision="v1", fields=fields))
    assert [e["answer"] for e in pinned] == ["1", "2", "3"]
    assert hub.resolve("acme/sums", repo_type="dataset").provenance() == {
        "repo": "acme/sums",
        "type": "dataset",
        "revision": "main",
        "commit": new,
    }

    with pytest.raises(ResourceError) as info:
        load_examples(DataSpec(source="hf:acme/absent", fields=fields))
    message = str(info.value)
    assert "\n" not in message and message.startswith("data.source: dataset hf:acme/absent")
    assert "huggingface-cli download --repo-type dataset acme/absent" in message


def hub_spec(tmp_path: Path, model_source: str, **extra) -> Path:
    spec = {
        "name": "hubstudy",
        "output_dir": str(tmp_path / "study"),
        "models": [{"id": "tiny", "source": model_source, **extra.pop("model", {})}],
        "algorithms": [{"id": "SFT", "method": "sft"}],
        "seeds": [1],
        "training": {
            "max_steps": 2,
            "learning_rate": 1e-4,
            "effective_batch_size": 4,
            "per_device_batch_size": 4,
        },
        "data": {"source": "task:oxs_arith", "train_size": 16},
        "benchmarks": [{"id": "arith", "task": "oxs_arith", "limit": 8}],
        **extra,
    }
    import yaml

    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_preflight_resolves_every_hub_input_once(hub_cache, zoo_tiny, monkeypatch):
    from oxstudy.execute import preflight
    from oxstudy.plan import plan
    from oxstudy.spec import load_spec

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    model_commit, data_commit = fake_commit("m"), fake_commit("d")
    put_snapshot(hub_cache, "acme/tiny-chat", model_files(zoo_tiny), commit=model_commit)
    write_dataset(hub_cache, "acme/sums", data_commit, list(range(20)))
    spec = load_spec(
        hub_spec(
            hub_cache.parent.parent,
            "acme/tiny-chat",
            data={"source": "hf:acme/sums", "fields": {"prompt": "question", "solution": "answer"}},
        )
    )
    resolved = preflight(plan(spec))
    assert resolved["models"]["acme/tiny-chat"]["commit"] == model_commit
    assert resolved["datasets"]["hf:acme/sums"]["commit"] == data_commit

    missing = load_spec(hub_spec(hub_cache.parent.parent, "acme/other"))
    with pytest.raises(OxstudyError, match="model acme/other: not in the local Hugging Face cache"):
        preflight(plan(missing))


# ------------------------------------------------------------- datasets of lm-eval benchmark tasks

MATHY_TASK = """task: mathy
dataset_path: acme/mathy
dataset_name: main
test_split: test
output_type: generate_until
doc_to_text: "{{question}}"
doc_to_target: "{{answer}}"
generation_kwargs: {until: ["\\n"], max_gen_toks: 8}
metric_list: [{metric: exact_match}]
"""


def mathy_spec(tmp_path: Path) -> Path:
    """A study whose one benchmark is a local lm-eval task YAML reading hub dataset acme/mathy."""
    task = tmp_path / "mathy.yaml"
    task.write_text(MATHY_TASK)
    return hub_spec(
        tmp_path, "zoo:tiny", benchmarks=[{"id": "mathy", "task": str(task), "metric": "exact_match,none"}]
    )


def put_mathy(hub_cache: Path, commit: str) -> None:
    readme = b"---\nconfigs:\n- config_name: main\n  data_files:\n  - split: test\n    path: main/test.jsonl\n---\n"
    rows = b"".join(
        json.dumps({"question": f"{a} + 0?", "answer": str(a)}).encode() + b"\n" for a in range(4)
    )
    put_snapshot(hub_cache, "acme/mathy", {"README.md": readme, "main/test.jsonl": rows}, commit=commit,
                 repo_type="dataset")  # fmt: skip


def test_preflight_resolves_the_hub_dataset_of_a_task_yaml_offline(hub_cache, zoo_tiny, monkeypatch):
    import datasets

    from oxstudy.execute import preflight
    from oxstudy.plan import plan
    from oxstudy.spec import load_spec

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", hub_cache.parent / "datasets")  # read at import
    commit = fake_commit("mathy")
    put_mathy(hub_cache, commit)
    # Offline, lm-eval's load_dataset("org/name") reads only a prepared copy, never the hub cache.
    with pytest.raises(ConnectionError):
        datasets.load_dataset("acme/mathy", "main", split="test")
    resolved = preflight(plan(load_spec(mathy_spec(hub_cache.parent.parent))), check_machine=False)
    [(task, [provenance])] = resolved["benchmark_datasets"].items()
    assert task.endswith("mathy.yaml")
    assert provenance == {
        "repo": "acme/mathy",
        "type": "dataset",
        "revision": "main",
        "commit": commit,
        "name": "main",
    }
    # ...which the pre-flight has now built from the snapshot: the call each cell's lm-eval makes works.
    rows = datasets.load_dataset("acme/mathy", "main", split="test")
    assert [row["answer"] for row in rows] == ["0", "1", "2", "3"]


def test_preflight_gated_benchmark_dataset_online_fails_in_one_line(hub_cache, zoo_tiny, monkeypatch):
    from oxstudy.execute import preflight
    from oxstudy.plan import plan
    from oxstudy.spec import load_spec

    go_online(monkeypatch)
    asked = []

    def refuse(repo_id, **kwargs):
        asked.append((repo_id, kwargs["repo_type"], kwargs["local_files_only"]))
        raise GatedRepoError(
            "Access to dataset acme/mathy is restricted.",
            response=http_response(403, "https://huggingface.co/api/datasets/acme/mathy"),
        )

    monkeypatch.setattr(huggingface_hub, "snapshot_download", refuse)
    spec = mathy_spec(hub_cache.parent.parent)
    study = load_spec(spec)
    with pytest.raises(ResourceError) as info:
        preflight(plan(study), spec=study, check_machine=False)
    [message] = info.value.messages
    assert message.startswith(f"{spec}:")  # located in the spec's YAML
    assert "benchmarks[0].task: benchmark mathy" in message and "dataset hf:acme/mathy: gated" in message
    assert "huggingface-cli login" in message and "https://huggingface.co/datasets/acme/mathy" in message
    assert asked == [("acme/mathy", "dataset", False)]  # online: a real download was asked for


def test_preflight_builtin_lm_eval_task_without_its_dataset_offline_fails(hub_cache, zoo_tiny, monkeypatch):
    from oxstudy.execute import preflight
    from oxstudy.plan import plan
    from oxstudy.spec import load_spec

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    study = load_spec(
        hub_spec(hub_cache.parent.parent, "zoo:tiny", benchmarks=[{"id": "gsm", "task": "gsm8k"}])
    )
    with pytest.raises(ResourceError) as info:
        preflight(plan(study), spec=study, check_machine=False)
    [message] = info.value.messages
    assert "benchmarks[0].task: benchmark gsm (task gsm8k) reads dataset hf:openai/gsm8k" in message
    assert "not in the local Hugging Face cache" in message


# ----------------------------------------------------------------------------- oxstudy run


def run_cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "oxstudy.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
    )


def test_run_offline_without_the_model_exits_2_before_any_cell(tmp_path):
    cache = tmp_path / "hf" / "hub"
    cache.mkdir(parents=True)
    spec = hub_spec(tmp_path, "acme/tiny-chat")
    result = run_cli("run", str(spec), env={"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "Traceback" not in result.stderr
    assert errors[0].startswith("error: model acme/tiny-chat: not in the local Hugging Face cache")
    runs = tmp_path / "study" / "runs"
    assert not runs.exists() or not any(runs.iterdir())  # zero cells trained


@pytest.mark.slow
def test_run_offline_with_the_model_cached_records_its_commit(tmp_path, zoo_tiny):
    """Model and the hub dataset of an lm-eval task YAML both only in the hub cache, offline:
    the cell trains, lm-eval evaluates the task, and the record pins both commits."""
    cache = tmp_path / "hf" / "hub"
    commit, data_commit = fake_commit("cached"), fake_commit("mathy")
    put_snapshot(cache, "acme/tiny-chat", model_files(zoo_tiny), commit=commit)
    put_mathy(cache, data_commit)
    task = tmp_path / "mathy.yaml"
    task.write_text(MATHY_TASK)
    benchmarks = [{"id": "arith", "task": "oxs_arith", "limit": 8},
                  {"id": "mathy", "task": str(task), "metric": "exact_match,none"}]  # fmt: skip
    spec = hub_spec(tmp_path, "acme/tiny-chat", model={"revision": "main"}, benchmarks=benchmarks)
    env = {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "HF_DATASETS_CACHE": str(tmp_path / "hf" / "datasets")}  # fmt: skip
    result = run_cli("run", str(spec), "--json", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    [record_path] = (tmp_path / "study" / "runs").glob("*.json")
    record = json.loads(record_path.read_text())
    assert record["status"] == "done"
    inputs = record["provenance"]["inputs"]
    assert inputs["model"] == {
        "source": "acme/tiny-chat",
        "repo": "acme/tiny-chat",
        "type": "model",
        "revision": "main",
        "commit": commit,
    }
    assert inputs["evaluation"]["arith"] == {"backend": "hf", "args": {"batch_size": 16, "dtype": "float32"}}
    assert record["metrics"]["arith"]["backend"] == "hf"
    mathy = {
        "repo": "acme/mathy",
        "type": "dataset",
        "revision": "main",
        "commit": data_commit,
        "name": "main",
    }
    assert inputs["benchmark_datasets"] == {"mathy": [mathy]}
    assert record["metrics"]["mathy"]["n"] == 4  # lm-eval read all 4 rows offline
    shutil.rmtree(cache)


def test_run_offline_without_a_benchmark_dataset_exits_2_before_any_cell(tmp_path, zoo_tiny):
    cache = tmp_path / "hf" / "hub"
    cache.mkdir(parents=True)
    spec = mathy_spec(tmp_path)
    env = {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    result = run_cli("run", str(spec), env=env, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert (
        "benchmark mathy" in errors[0]
        and "dataset hf:acme/mathy: not in the local Hugging Face cache" in errors[0]
    )
    runs = tmp_path / "study" / "runs"
    assert not runs.exists() or not any(runs.iterdir())  # zero cells trained
