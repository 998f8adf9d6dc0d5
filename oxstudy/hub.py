"""Hugging Face hub models and datasets: resolve once, download in pre-flight, pin revisions.

Every hub model (``Qwen/Qwen2.5-1.5B-Instruct``) and dataset (``hf:openai/gsm8k``) of a study
goes through :func:`resolve`, which wraps ``huggingface_hub.snapshot_download`` and returns a
:class:`HubSnapshot`: the local snapshot directory and the **commit hash** it holds (the
snapshot folder of the real cache layout ``<cache>/models--org--name/snapshots/<sha>/`` is named
after the commit, so the hash is exact, not looked up again).

Behaviour, as in transformers / TRL / lm-eval:

- online: the requested revision (``main`` unless the spec pins ``revision:``) is resolved on
  the hub and missing files are downloaded (a progress bar when a ``rich`` Progress is given);
- ``HF_HUB_OFFLINE=1`` (or ``TRANSFORMERS_OFFLINE=1``; for datasets also
  ``HF_DATASETS_OFFLINE=1``): the local cache only, no request is made;
- a gated, missing or unreachable repo raises :class:`~oxstudy.errors.ResourceError` with one
  line naming it (``huggingface-cli login`` for gated / private ones).

The driver resolves everything in pre-flight (:func:`oxstudy.execute.preflight`) with
``download=True``; cell workers then resolve with ``prefer_cache=True``, i.e. from the cache the
pre-flight just filled (no request per cell) and online only when it is missing
(``oxstudy run --no-preflight``). The environment is read at call time, not import time.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from oxstudy.errors import ResourceError

RepoType = Literal["model", "dataset"]
COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")

#: Weight formats a causal LM never needs here (other frameworks, original checkpoints,
#: quantised exports): skipping them keeps downloads to what transformers / vLLM load.
MODEL_IGNORE_PATTERNS = ["*.pth", "*.pt", "*.gguf", "*.onnx", "*.onnx_data", "*.msgpack", "*.h5", "*.ot",
                         "original/*", "onnx/*", "openvino/*"]  # fmt: skip

_TRUE = {"1", "true", "yes", "on"}


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def is_offline(repo_type: RepoType = "model") -> bool:
    """Whether the environment forbids hub requests for this kind of repo (read now, not at import)."""
    if _env_true("HF_HUB_OFFLINE") or _env_true("TRANSFORMERS_OFFLINE"):
        return True
    return repo_type == "dataset" and _env_true("HF_DATASETS_OFFLINE")


def hub_cache_dir() -> Path:
    """The hub cache huggingface_hub uses: ``HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
    ``~/.cache/huggingface/hub`` (resolved now, so a changed environment is honoured)."""
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(name):
            return Path(os.path.expandvars(os.environ[name])).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface"
    )
    return Path(os.path.expandvars(home)).expanduser() / "hub"


def repo_folder(repo_id: str, repo_type: RepoType = "model") -> Path:
    """``<cache>/models--org--name`` (or ``datasets--org--name``) of the real cache layout."""
    return hub_cache_dir() / f"{repo_type}s--{repo_id.replace('/', '--')}"


@dataclass(frozen=True)
class HubSnapshot:
    """A resolved hub repo.

    Attributes:
        repo_id: ``org/name``.
        repo_type: ``model`` or ``dataset``.
        revision: the revision asked for (``None`` = the default branch).
        commit: the 40-hex commit hash actually used.
        path: the local snapshot directory.
    """

    repo_id: str
    repo_type: RepoType
    revision: str | None
    commit: str
    path: str

    def provenance(self) -> dict[str, Any]:
        """What a run record keeps: enough to fetch exactly these files again."""
        return {"repo": self.repo_id, "type": self.repo_type, "revision": self.revision or "main",
                "commit": self.commit}  # fmt: skip


def _what(repo_id: str, repo_type: RepoType, revision: str | None) -> str:
    kind = "dataset hf:" if repo_type == "dataset" else "model "
    return f"{kind}{repo_id}" + (f"@{revision}" if revision else "")


def _hub_error(exc: Exception, repo_id: str, repo_type: RepoType, revision: str | None) -> ResourceError:
    """One line for the ways a snapshot cannot be had."""
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    what = _what(repo_id, repo_type, revision)
    url = f"https://huggingface.co/{'datasets/' if repo_type == 'dataset' else ''}{repo_id}"
    # GatedRepoError is a RepositoryNotFoundError: test it first.
    if isinstance(exc, GatedRepoError):
        return ResourceError(
            f"{what}: gated repository; accept its terms at {url} and run "
            "`huggingface-cli login` (or set HF_TOKEN), then re-run"
        )
    if isinstance(exc, RevisionNotFoundError):
        return ResourceError(
            f"{what}: revision '{revision}' not found on the hub (check the spec's revision:)"
        )
    if isinstance(exc, RepositoryNotFoundError):
        return ResourceError(
            f"{what}: not found on the Hugging Face hub (a typo, or a private repo: `huggingface-cli login`)"
        )
    if isinstance(exc, LocalEntryNotFoundError):
        if is_offline(repo_type):
            flag = "HF_DATASETS_OFFLINE/HF_HUB_OFFLINE" if repo_type == "dataset" else "HF_HUB_OFFLINE"
            return ResourceError(
                f"{what}: not in the local Hugging Face cache ({hub_cache_dir()}) and {flag} is "
                f"set; download it where there is internet (huggingface-cli download "
                f"{'--repo-type dataset ' if repo_type == 'dataset' else ''}{repo_id}) or unset {flag}"
                + (
                    ""
                    if repo_type == "dataset"
                    else ", or use a local path or a zoo: model (CPU "
                    "quickstart: specs/quickstart.yaml, or oxstudy run SPEC --smoke)"
                )
            )
        return ResourceError(
            f"{what}: cannot reach the Hugging Face hub and it is not in the local cache "
            f"({hub_cache_dir()}); check the network or set HF_HUB_OFFLINE=1 with a filled cache"
        )
    first = str(exc).splitlines()[0] if str(exc) else ""
    return ResourceError(f"{what}: could not be downloaded ({type(exc).__name__}: {first})")


def _snapshot(
    repo_id: str, repo_type: RepoType, revision: str | None, *, local_only: bool, tqdm_class: Any = None
) -> str:
    import huggingface_hub  # the module attribute, looked up now: the one download boundary

    kwargs: dict[str, Any] = {
        "repo_type": repo_type,
        "revision": revision,
        "cache_dir": str(hub_cache_dir()),
        "local_files_only": local_only,
    }
    if repo_type == "model":
        kwargs["ignore_patterns"] = MODEL_IGNORE_PATTERNS
    if tqdm_class is not None and not local_only:
        kwargs["tqdm_class"] = tqdm_class
    return str(huggingface_hub.snapshot_download(repo_id, **kwargs))


def resolve(
    repo_id: str,
    *,
    repo_type: RepoType = "model",
    revision: str | None = None,
    download: bool = True,
    prefer_cache: bool = False,
    progress: Any = None,
) -> HubSnapshot:
    """Resolve ``repo_id`` at ``revision`` to a local snapshot and its commit hash.

    Args:
        download: allow network requests (still none when the offline variables are set).
        prefer_cache: use the cached snapshot of ``revision`` when there is one (no request),
            go online only when it is missing. Workers use this after the pre-flight.
        progress: a ``rich.progress.Progress`` to show download bars in.

    Raises:
        ResourceError: gated, missing, unknown revision, or not cached while offline.
    """
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    offline = is_offline(repo_type) or not download
    tqdm_class = rich_tqdm(progress, f"{repo_id}") if progress is not None else None
    try:
        if prefer_cache and not offline:
            try:
                path = _snapshot(repo_id, repo_type, revision, local_only=True)
            except LocalEntryNotFoundError:
                path = _snapshot(repo_id, repo_type, revision, local_only=False, tqdm_class=tqdm_class)
        else:
            path = _snapshot(repo_id, repo_type, revision, local_only=offline, tqdm_class=tqdm_class)
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError, ValueError) as exc:
        raise _hub_error(exc, repo_id, repo_type, revision) from None
    commit = Path(path).name
    if not COMMIT_RE.match(commit):
        raise ResourceError(
            f"{_what(repo_id, repo_type, revision)}: snapshot {path} is not in a hub cache "
            "snapshots/<commit> folder (cannot pin its revision)"
        )
    return HubSnapshot(repo_id=repo_id, repo_type=repo_type, revision=revision, commit=commit, path=path)


def load_hub_dataset(
    repo_id: str, config: str | None, split: str, *, revision: str | None = None, where: str = "data.source"
) -> list[dict[str, Any]]:
    """Rows of a hub dataset split, read from its resolved snapshot (so the revision is pinned
    and the commit known). ``datasets`` builds the split from the snapshot's files and configs."""
    try:
        snapshot = resolve(repo_id, repo_type="dataset", revision=revision, prefer_cache=True)
    except ResourceError as exc:
        raise ResourceError(*(f"{where}: {m}" for m in exc.messages)) from None
    from datasets import load_dataset

    try:
        dataset = load_dataset(snapshot.path, config, split=split)
    except Exception as exc:  # unknown config / split, unreadable files: bad input either way
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise ResourceError(
            f"{where}: hf:{repo_id} (commit {snapshot.commit[:12]}) could not be read "
            f"({type(exc).__name__}: {first})"
        ) from None
    return [dict(row) for row in dataset]


def prepare_for_load_dataset(
    snapshot: HubSnapshot, name: str | None, kwargs: dict[str, Any] | None = None
) -> None:
    """Make ``datasets.load_dataset(snapshot.repo_id, name, **kwargs)`` work, as lm-eval calls it.

    Online that call itself downloads and prepares the dataset into the ``datasets`` cache
    (``HF_DATASETS_CACHE``), which later calls (each cell's lm-eval) reuse. Offline,
    ``load_dataset("org/name")`` never reads the hub cache: it only finds a copy prepared
    earlier, under ``<datasets cache>/org___name/<config>/<version>/<hash>/`` (measured with
    datasets 5.2). So when offline and that copy is missing, it is built here from the
    snapshot's own files, at exactly that place, with the commit as the hash, as an online
    ``load_dataset`` would have left it.

    Raises:
        ResourceError: the dataset cannot be read (unknown config, unreadable files).
    """
    from datasets import load_dataset

    kwargs = {
        k: v for k, v in (kwargs or {}).items() if k != "trust_remote_code"
    }  # as lm-eval, datasets >= 4
    what = (
        f"dataset hf:{snapshot.repo_id}"
        + (f" ({name})" if name else "")
        + f" at commit {snapshot.commit[:12]}"
    )
    try:
        try:
            load_dataset(snapshot.repo_id, name, **kwargs)
            return
        except Exception:  # noqa: BLE001 - offline and never prepared: build it from the snapshot below
            if not is_offline("dataset"):
                raise
        from datasets import load_dataset_builder
        from datasets.naming import camelcase_to_snakecase

        builder = load_dataset_builder(
            snapshot.path, name, **{k: v for k, v in kwargs.items() if k != "revision"}
        )
        builder.repo_id = snapshot.repo_id  # the cache folder of load_dataset(repo_id): org___name/...
        builder.dataset_name = camelcase_to_snakecase(snapshot.repo_id.split("/")[-1])
        builder.hash = snapshot.commit
        builder._cache_dir = builder._build_cache_dir()
        builder.download_and_prepare()
        load_dataset(snapshot.repo_id, name, **kwargs)
    except Exception as exc:  # noqa: BLE001 - whatever datasets raises, the evaluation would fail on it
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise ResourceError(f"{what}: could not be loaded ({type(exc).__name__}: {first})") from None


def rich_tqdm(progress: Any, label: str) -> type:
    """A ``tqdm`` class for ``snapshot_download(tqdm_class=...)`` that draws into a ``rich``
    Progress (one task per bar) instead of writing to the terminal, so downloads show inside
    the CLI's own display."""
    from tqdm.std import tqdm as std_tqdm

    class RichTqdm(std_tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.pop("name", None)
            kwargs["file"] = io.StringIO()  # tqdm keeps counting; rich does the drawing
            kwargs["disable"] = False
            kwargs.setdefault("mininterval", 0.0)
            super().__init__(*args, **kwargs)
            self._task = progress.add_task(f"{label}: {self.desc or 'download'}", total=self.total or None)

        def display(self, msg: Any = None, pos: Any = None) -> bool:
            if getattr(self, "_task", None) is not None:
                progress.update(
                    self._task,
                    completed=self.n,
                    total=self.total or None,
                    description=f"{label}: {self.desc or 'download'}",
                )
            return True

        def close(self) -> None:
            if getattr(self, "_task", None) is not None:
                self.display()
            super().close()

    return RichTqdm


def parse_hub_source(source: str) -> str | None:
    """The repo id of a hub source (``org/name`` or ``hf:org/name``), else None."""
    from oxstudy.spec import source_kind

    source = str(source).strip()
    if source_kind(source) != "hub":
        return None
    return source[3:] if source.startswith("hf:") else source


def snapshot_of(path: str | Path) -> tuple[str, RepoType, str] | None:
    """``(repo_id, repo_type, commit)`` when ``path`` is (inside) a hub cache snapshot
    ``.../models--org--name/snapshots/<commit>/``, else None."""
    parts = Path(path).parts
    for i in range(len(parts) - 2, 0, -1):
        if parts[i] == "snapshots" and COMMIT_RE.match(parts[i + 1]):
            kind, _, name = parts[i - 1].partition("--")
            if kind in ("models", "datasets") and name:
                return name.replace("--", "/"), ("model" if kind == "models" else "dataset"), parts[i + 1]
    return None


def source_provenance(source: str, path: str | Path, revision: str | None = None) -> dict[str, Any]:
    """Where a model's weights came from, for the run record: a hub repo with its commit, a
    zoo model with its config hash, or a local path."""
    found = snapshot_of(path)
    if found is not None:
        repo_id, repo_type, commit = found
        return {"source": source, "repo": repo_id, "type": repo_type, "revision": revision or "main",
                "commit": commit}  # fmt: skip
    if str(source).startswith("zoo:"):
        return {"source": source, "zoo": str(source)[4:], "config_hash": Path(path).name.rpartition("-")[2]}
    return {"source": source, "path": str(path)}
