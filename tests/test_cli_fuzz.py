"""Fuzz test of the CLI: every command x bad input gives one line on stderr and exit code 2.

The commands are enumerated from the typer app itself (``oxstudy.cli.build_app``), so a new
command is covered by default. Per command it tries: no arguments, an unknown option, a
wrong-typed value for every int/float option, and for every input path it takes: a missing
file, a directory where a file is expected, an empty file and a binary file. Each must end
with exit code 2 and exactly one ``error: ...`` line on stderr, never a traceback.

Most cases run in-process (``oxstudy.cli.main(argv)``, catching SystemExit: ~ms each); a few
run the installed console entry point in a subprocess to prove the real path. Every fuzz
input is invalid, so no case can start real work (training, zoo builds); the per-test
timeout backs that up.

Where a case may legitimately succeed, the expectation is written down per command below
(``NO_ARGS_SUCCEEDS``, ``OUTPUT_PATHS``, ...); a new command that does not fit the default
expectation fails here until someone decides what it should do.
"""

from __future__ import annotations

import os
import subprocess
import sys
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer

from oxstudy.cli import build_app, main

ROOT = Path(__file__).resolve().parents[1]

#: Commands that do something useful with no argument at all (exit 0).
NO_ARGS_SUCCEEDS = {"schema", "algorithms", "zoo list", "tasks list"}
#: Commands whose no-argument form uses a default input that is absent in an empty directory:
#: one line naming where it looked, exit 2 (item 9: the most recent study in ./studies).
NO_ARGS_DEFAULT_STUDY = {"report", "analyze", "status"}
#: Commands whose no-argument form starts real work by design; not run here.
NO_ARGS_STARTS_WORK = {"zoo build": "builds every zoo model (minutes of pretraining)"}

#: Path parameters that are written, not read: a missing file there is no error.
OUTPUT_PATHS = {("schema", "output"), ("report", "output"), ("tasks export", "directory")}
#: Input paths that may legitimately not exist yet (the command then reads nothing from them).
MAY_NOT_EXIST = {("plan", "store_dir"): "a results store that does not exist yet holds no records"}
#: File suffix for each input path (loaders dispatch on it); default ".yaml".
SUFFIXES = {
    ("analyze", "results"): ".csv",
    ("analyze", "items"): ".csv",
    ("analyze", "mapping"): ".csv",
    ("verify", "items"): ".csv",
    ("verify", "mapping"): ".csv",
    ("verify", "results"): ".csv",
    ("report", "inputs"): ".csv",
    ("report", "items"): ".csv",
    ("report", "mapping"): ".csv",
}

BINARY = bytes(range(256)) * 8 + b"\xff\xfe\x00\x00garbage\x00"

DATA = ROOT / "tests" / "data"
#: For a bad file given to an *option*: a valid main input, so the bad file is what fails.
PRIMARY = {
    "plan": [str(ROOT / "specs" / "quickstart.yaml")],
    "analyze": [str(DATA / "analysis_runs.csv"), "--resamples", "200"],
    "report": [str(DATA / "analysis_runs.csv"), "--resamples", "200"],
    "verify": [str(DATA / "analysis_claims.yaml"), "--resamples", "200"],
}
#: Options that are a complete input by themselves (no main input next to them).
STANDALONE_OPTIONS = {"mapping"}


# --------------------------------------------------------------------------- enumeration


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # "argument" | "option"
    opts: tuple[str, ...]
    required: bool
    python_type: Any  # the scalar type (Optional / list unwrapped)


@dataclass(frozen=True)
class Command:
    path: tuple[str, ...]
    params: tuple[Param, ...]

    @property
    def name(self) -> str:
        return " ".join(self.path)


def _scalar_type(annotation: Any) -> Any:
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    while typing.get_origin(annotation) in (
        typing.Union,
        list,
        types.UnionType,
    ):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = args[0]
    return annotation


def _commands(app: typer.Typer, prefix: tuple[str, ...] = ()) -> Iterator[Command]:
    """Every leaf command of the app: click's view for names/required, the function's type hints
    for the value type (stable across typer's internal parameter classes)."""
    click_root = typer.main.get_command(app)
    yield from _walk(click_root, app, prefix)


def _walk(click_command: Any, app: typer.Typer | None, prefix: tuple[str, ...]) -> Iterator[Command]:
    subcommands = getattr(click_command, "commands", None)
    if subcommands:
        for name, sub in sorted(subcommands.items()):
            yield from _walk(sub, None, (*prefix, name))
        return
    hints = typing.get_type_hints(click_command.callback, include_extras=True)
    params = []
    for p in click_command.params:
        if p.name in ("help",):
            continue
        params.append(
            Param(
                p.name,
                p.param_type_name,
                tuple(p.opts),
                bool(p.required),
                _scalar_type(hints.get(p.name, str)),
            )
        )
    yield Command(prefix, tuple(params))


COMMANDS = list(_commands(build_app()))
COMMAND_IDS = [c.name for c in COMMANDS]


def test_enumeration_sees_every_command() -> None:
    """The enumeration is what the fuzz cases run over: check it finds the known commands
    (so a broken walk cannot make the fuzz test pass vacuously)."""
    known = {
        "validate",
        "plan",
        "schema",
        "algorithms",
        "zoo build",
        "zoo list",
        "tasks export",
        "tasks list",
        "eval",
        "run",
        "status",
        "analyze",
        "verify",
        "report",
    }
    assert known <= set(COMMAND_IDS), sorted(known - set(COMMAND_IDS))
    run = next(c for c in COMMANDS if c.name == "run")
    spec = next(p for p in run.params if p.name == "spec_path")
    assert spec.kind == "argument" and spec.required and spec.python_type is Path
    assert next(p for p in run.params if p.name == "max_parallel").python_type is int


# --------------------------------------------------------------------------- running


@dataclass
class Outcome:
    code: int
    out: str
    err: str


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> Outcome:
    """``oxstudy ARGV`` in-process. Any exception other than SystemExit escapes: that is a
    traceback, and fails the test with it."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    captured = capsys.readouterr()
    code = exit_info.value.code
    return Outcome(0 if code is None else code if isinstance(code, int) else 1, captured.out, captured.err)


def assert_one_line_error(outcome: Outcome, argv: list[str], *, contains: str | None = None) -> None:
    lines = [line for line in outcome.err.splitlines() if line.strip()]
    where = f"oxstudy {' '.join(argv)}: exit {outcome.code}, stderr:\n{outcome.err}"
    assert "Traceback" not in outcome.err, where
    assert outcome.code == 2, where
    assert len(lines) == 1 and lines[0].startswith("error: "), where
    if contains is not None:
        assert contains.lower() in lines[0].lower(), where


@pytest.fixture()
def in_empty_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from an empty directory (no ./studies, nothing written into the repository)."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("COLUMNS", "200")
    return work


# --------------------------------------------------------------------------- cases


@pytest.mark.timeout(120)
@pytest.mark.parametrize("command", COMMANDS, ids=COMMAND_IDS)
def test_no_arguments(command: Command, in_empty_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = list(command.path)
    if command.name in NO_ARGS_STARTS_WORK:
        pytest.skip(f"{command.name} with no argument {NO_ARGS_STARTS_WORK[command.name]}")
    outcome = run_cli(argv, capsys)
    if any(p.required for p in command.params):
        assert_one_line_error(outcome, argv, contains="missing")
    elif command.name in NO_ARGS_DEFAULT_STUDY:
        assert_one_line_error(outcome, argv, contains="none found in ./studies")
    elif command.name in NO_ARGS_SUCCEEDS:
        assert outcome.code == 0 and "Traceback" not in outcome.err, outcome.err
    else:
        pytest.fail(
            f"new command {command.name!r} takes no required argument: decide what it does with none "
            "(NO_ARGS_SUCCEEDS / NO_ARGS_DEFAULT_STUDY / NO_ARGS_STARTS_WORK) and add it there"
        )


@pytest.mark.timeout(120)
@pytest.mark.parametrize("command", COMMANDS, ids=COMMAND_IDS)
def test_unknown_option(command: Command, in_empty_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [*command.path, "--no-such-option"]
    assert_one_line_error(run_cli(argv, capsys), argv, contains="no such option: --no-such-option")


def _numeric_options() -> list[tuple[Command, Param]]:
    return [
        (c, p)
        for c in COMMANDS
        for p in c.params
        if p.kind == "option" and p.python_type in (int, float) and p.opts
    ]


NUMERIC = _numeric_options()


def test_numeric_options_are_found() -> None:
    names = {(c.name, p.name) for c, p in NUMERIC}
    assert {
        ("run", "max_parallel"),
        ("analyze", "resamples"),
        ("zoo build", "jobs"),
        ("eval", "limit"),
    } <= names


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("command", "param"), NUMERIC, ids=[f"{c.name}-{p.opts[0]}" for c, p in NUMERIC])
def test_wrong_typed_option(
    command: Command, param: Param, in_empty_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The option comes first: click converts parameters in the order they were given, so this
    # is the error reported even where a required argument is missing too.
    argv = [*command.path, param.opts[0], "not-a-number"]
    assert_one_line_error(run_cli(argv, capsys), argv, contains=param.opts[0])


def _input_paths() -> list[tuple[Command, Param]]:
    return [
        (c, p)
        for c in COMMANDS
        for p in c.params
        if p.python_type is Path and (c.name, p.name) not in OUTPUT_PATHS
    ]


INPUT_PATHS = _input_paths()
FILE_CASES = ("missing", "directory", "empty", "binary")


def test_input_paths_are_found() -> None:
    names = {(c.name, p.name) for c, p in INPUT_PATHS}
    assert {
        ("run", "spec_path"),
        ("validate", "specs"),
        ("analyze", "results"),
        ("report", "inputs"),
        ("report", "claims"),
        ("verify", "claims"),
        ("status", "target"),
    } <= names


def make_bad_file(case: str, directory: Path, suffix: str) -> Path:
    path = directory / f"bad-[red]{case}{suffix}"  # markup-like: must be printed verbatim
    if case == "directory":
        path.mkdir()
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "binary":
        path.write_bytes(BINARY)
    return path


def _file_argv(command: Command, param: Param, path: Path) -> list[str]:
    if param.kind == "argument":
        argv = [*command.path, str(path)]
    else:
        argv = [*command.path, param.opts[0], str(path)]
        takes_main_input = any(p.kind == "argument" for p in command.params)
        if takes_main_input and param.name not in STANDALONE_OPTIONS:
            assert command.name in PRIMARY, f"add a valid main input for {command.name!r} to PRIMARY"
            argv += PRIMARY[command.name]
    # Other required parameters: a path parameter gets the same bad file; a plain value a
    # placeholder that is valid for the parser (the bad file must be what fails).
    for other in command.params:
        if other is param or not other.required:
            continue
        filler = str(path) if other.python_type is Path else "oxs_arith"
        argv += [filler] if other.kind == "argument" else [other.opts[0], filler]
    return argv


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", FILE_CASES)
@pytest.mark.parametrize(
    ("command", "param"), INPUT_PATHS, ids=[f"{c.name}-{p.name}" for c, p in INPUT_PATHS]
)
def test_bad_input_file(
    command: Command, param: Param, case: str, in_empty_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = (command.name, param.name)
    if key in MAY_NOT_EXIST and case in ("missing", "directory"):
        pytest.skip(f"{command.name} {param.opts[0]}: {MAY_NOT_EXIST[key]}")
    path = make_bad_file(case, in_empty_dir.parent, SUFFIXES.get(key, ".yaml"))
    argv = _file_argv(command, param, path)
    outcome = run_cli(argv, capsys)
    assert_one_line_error(outcome, argv)
    if case == "missing":
        assert path.name in outcome.err, outcome.err  # names the file it could not find


#: Plain-string options that name a file or directory (the type system cannot tell):
#: (command, option) -> the rest of a valid command line.
STRING_PATH_OPTIONS = {
    ("eval", "--model"): ["--benchmarks", "oxs_arith", "--limit", "1"],
    ("eval", "--benchmarks"): ["--model", "zoo:tiny", "--limit", "1"],
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", FILE_CASES)
@pytest.mark.parametrize(
    ("command", "option"), list(STRING_PATH_OPTIONS), ids=[" ".join(k) for k in STRING_PATH_OPTIONS]
)
def test_bad_file_in_a_string_option(
    command: str, option: str, case: str, in_empty_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert command in COMMAND_IDS
    path = make_bad_file(case, in_empty_dir.parent, ".yaml" if option == "--benchmarks" else "")
    argv = [*command.split(), option, str(path), *STRING_PATH_OPTIONS[command, option]]
    outcome = run_cli(argv, capsys)
    assert_one_line_error(outcome, argv, contains=path.name)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("group", ["", "zoo", "tasks"])
def test_a_group_alone_shows_its_help_and_exit_2(
    group: str, in_empty_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [group] if group else []
    outcome = run_cli(argv, capsys)
    assert outcome.code == 2 and "Traceback" not in outcome.out + outcome.err
    assert "Usage:" in outcome.out + outcome.err and "Commands" in outcome.out + outcome.err


@pytest.mark.timeout(60)
def test_unknown_command(in_empty_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert_one_line_error(run_cli(["frobnicate"], capsys), ["frobnicate"], contains="no such command")


# --------------------------------------------------------------------------- the real entry point


def _console_entry() -> list[str]:
    script = Path(sys.executable).parent / "oxstudy"
    return [str(script)] if script.exists() else [sys.executable, "-m", "oxstudy.cli"]


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    "argv",
    [
        ["run"],
        ["analyze", "--bogus"],
        ["run", "spec.yaml", "--max-parallel", "abc"],
        ["report", "--mapping", "F"],
        ["validate", "."],
    ],
    ids=["run-no-spec", "analyze-unknown-option", "run-wrong-type", "report-mapping-missing", "validate-dir"],
)
def test_console_entry_point(argv: list[str], tmp_path: Path) -> None:
    """The installed ``oxstudy`` script (argv from sys.argv, real stderr): one line, exit 2."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    proc = subprocess.run(
        [*_console_entry(), *argv], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=240
    )
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr


def test_fuzz_cases_cover_every_command() -> None:
    """Every command gets the no-argument and unknown-option cases; these kinds of input
    exist somewhere (so a change to the enumeration cannot silently empty a case)."""
    assert len(COMMANDS) >= 14
    assert len(NUMERIC) >= 5 and len(INPUT_PATHS) >= 10


@pytest.mark.parametrize("module", ["click", "typer._click"])
def test_usage_errors_of_either_click_are_one_line(
    module: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """typer >= 0.29 raises its vendored click's errors, older typer (and code calling click
    directly) the click package's: both must end as one line and exit 2."""
    import importlib

    exceptions = pytest.importorskip(f"{module}.exceptions")
    app = typer.Typer()

    @app.command()
    def boom() -> None:
        raise exceptions.UsageError("a usage problem")

    @app.command()
    def other() -> None:  # two commands, so `boom` is a subcommand as in oxstudy
        pass

    cli = importlib.import_module("oxstudy.cli")
    monkeypatch.setattr(cli, "build_app", lambda: app)
    assert_one_line_error(run_cli(["boom"], capsys), ["boom"], contains="a usage problem")


@pytest.mark.parametrize(
    ("errno_name", "hint"),
    [("ENOSPC", "No space left"), ("EACCES", "permission denied"), ("EROFS", "read-only")],
)
def test_os_errors_at_the_boundary_are_one_line(
    errno_name: str, hint: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Disk full, permission denied, read-only: an OSError escaping a command is one line
    naming the path, exit 2 (tests of real full/read-only stores are the runner's)."""
    import errno as errno_module
    import importlib

    app = typer.Typer()
    code = getattr(errno_module, errno_name)

    @app.command()
    def write() -> None:
        raise OSError(code, os.strerror(code), "/some/where/out.html")

    @app.command()
    def other() -> None:
        pass

    cli = importlib.import_module("oxstudy.cli")
    monkeypatch.setattr(cli, "build_app", lambda: app)
    outcome = run_cli(["write"], capsys)
    assert_one_line_error(outcome, ["write"], contains="/some/where/out.html")
    assert hint.lower() in outcome.err.lower()


def test_a_real_os_error_names_the_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A real one (works as root too): writing under a regular file, as if it were a directory."""
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    argv = ["schema", "-o", str(a_file / "schema.json")]
    assert_one_line_error(run_cli(argv, capsys), argv, contains=f"{a_file / 'schema.json'}: not a directory")


def test_ctrl_c_is_one_line_and_exit_130(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import oxstudy.spec

    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(oxstudy.spec, "load_spec", interrupted)
    outcome = run_cli(["validate", str(ROOT / "specs" / "quickstart.yaml")], capsys)
    assert outcome.code == 130 and "Traceback" not in outcome.err
    assert outcome.err.strip().startswith("interrupted: work already finished is kept")


def test_the_fork_server_and_its_cells_ignore_ctrl_c() -> None:
    # the local runner's fork server runs `python -c ...` and imports oxstudy._preload: Ctrl-C to
    # the process group must not kill it mid-import with a traceback (the driver stops the cells)
    code = "import signal, oxstudy._preload; print(signal.getsignal(signal.SIGINT) == signal.SIG_IGN)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.stdout.strip() == "True", out.stderr[-2000:]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("command", ["zoo list", "tasks list", "algorithms"])
def test_a_piped_table_is_not_cut(
    command: str, in_empty_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``oxstudy zoo list | cat``: output that is not a terminal gets rich's default 80 columns
    unless the command widens it; names and numbers were cut to ``zoo:sma…`` and ``oxs_a…``."""
    monkeypatch.delenv("COLUMNS", raising=False)  # as under `| cat` (in_empty_dir sets 200)
    outcome = run_cli(command.split(), capsys)
    assert outcome.code == 0, outcome.err
    assert "…" not in outcome.out, outcome.out
    if command == "zoo list":
        from oxstudy import zoo

        assert all(f"zoo:{name}" in outcome.out for name in zoo.zoo_names())
    elif command == "tasks list":
        from oxstudy.tasks import TASKS

        assert all(f" {name} " in outcome.out and TASKS[name].metric in outcome.out for name in TASKS)
