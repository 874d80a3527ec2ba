"""Do-no-harm check on real notebooks: does tfmagic add errors the notebook does not have?

Runs each shared/corpus notebook (see its README; `--quick`: the 4 CI ones) in three fresh
kernels, every code cell twice in a row: plain; tracked (`%load_ext tfmagic` first); isolated
(each cell under `%%tf_isolated`; eager notebooks only: no cell calls `disable_eager_execution()`
or `disable_v2_behavior()`, and the plain pass ends eager). "New error": a run index where tracked
or isolated raised and plain did not, or raised another ename. "All runs recorded":
`tfmagic.history()` holds every cell run. One markdown row per notebook; each new error's cell,
run and traceback follow the table. Exit status 1 on any new error or unrecorded run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# The project's shared/ folder sits beside the repository (CI's clone gets a copy there too).
CORPUS = Path(
    os.environ.get("TFMAGIC_CORPUS")
    or Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"
)
# `--quick` and tests/test_corpus.py: one notebook per thing most likely to break.
QUICK = [
    # tf_keras flavour: subclassed layers with __init__, build and call
    "tfdocs__tutorials__customization__custom_layers",
    # TF1: tf.Graph().as_default(), tf.compat.v1.Session, placeholders, variable scopes
    "tfdocs__guide__migrate__tf1_vs_tf2",
    # Keras 3 via tf.keras: a Layer subclass without __init__ (`Sampling`), a VAE, add_loss
    "kerasio__making_new_layers_and_models_via_subclassing",
    # Keras 3 via `import keras`: Sequential and functional models, feature extraction
    "kerasio__sequential_model",
]
PASSES = ("plain", "tracked", "isolated")
CELL_TIMEOUT = 120  # seconds per cell run, as the corpus README specifies
# Cells the corpus does not run: `!pip install` cells and the license header cells.
SKIPPED_CELL = re.compile(r"^\s*[!%]pip|^#@title Licensed", re.MULTILINE)
# A notebook that switches the process to graph mode gets no isolated pass: there
# %%tf_isolated gives every cell a fresh tf.Graph by design, so a cell that uses an
# earlier cell's tensors would fail because of the isolation, not because of a bug.
GRAPH_MODE = re.compile(r"\bdisable_eager_execution\s*\(|\bdisable_v2_behavior\s*\(")
MARKER = "TFMAGIC_CORPUS_MARKER "
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

# The corpus README's flavour per notebook ("tf_keras": the kernel gets TF_USE_LEGACY_KERAS=1);
# every other notebook runs with Keras 3.
TF_KERAS_NOTEBOOKS = {
    "tfdocs__guide__checkpoint",
    "tfdocs__tutorials__customization__custom_layers",
    "kerasio__understanding_masking_and_padding",
}
# The corpus README's baseline errors (run index -> ename), the reference when the
# plain pass is not run, and what a plain pass is checked against.
DOCUMENTED_BASELINE: dict[str, dict[int, str]] = {
    "tfdocs__guide__checkpoint": {39: "AssertionError"},
    "tfdocs__guide__advanced_autodiff": {17: "RuntimeError", 19: "RuntimeError"},
    "tfdocs__guide__migrate__migrating_checkpoints": dict.fromkeys(range(30, 34), "AttributeError"),
    "kerasio__custom_train_step_in_tensorflow": {16: "Exception", 17: "Exception"},
    "kerasio__making_new_layers_and_models_via_subclassing": {
        36: "Exception",
        37: "Exception",
        38: "NameError",
        39: "NameError",
    },
}

# The last cell of every pass: what the kernel ran with and, when tfmagic is loaded, what
# it recorded (the execution counts of tfmagic.history(); this cell is not in it yet).
FINAL_CELL = f"""\
import json as _corpus_json, os as _corpus_os, sys as _corpus_sys
_corpus = {{"python": _corpus_sys.executable,
           "legacy_keras": _corpus_os.environ.get("TF_USE_LEGACY_KERAS")}}
if "tensorflow" in _corpus_sys.modules:
    _corpus["eager"] = bool(_corpus_sys.modules["tensorflow"].executing_eagerly())
if "tfmagic" in _corpus_sys.modules:
    import tfmagic as _corpus_tfmagic
    _corpus["tfmagic"] = _corpus_tfmagic.__file__
    _corpus["history"] = len(_corpus_tfmagic.history())
    _corpus["recorded"] = [r.execution_count for r in _corpus_tfmagic.history()]
    try:
        from tfmagic import incidents as _corpus_incidents
        _corpus["incidents"] = [i.details for i in _corpus_incidents.all_incidents()]
    except Exception as _corpus_e:
        _corpus["incidents"] = [f"could not read tfmagic's incidents: {{_corpus_e!r}}"]
print({MARKER!r} + _corpus_json.dumps(_corpus))
"""


@dataclass
class Run:
    """One execution of one cell: run index (0-based over the doubled list), its error if any."""

    index: int
    cell: int
    execution_count: int | None = None
    ename: str | None = None
    evalue: str = ""
    traceback: list[str] = field(default_factory=list)


@dataclass
class PassResult:
    name: str
    runs: list[Run]
    wall: float
    marker: dict[str, Any] | None = None
    failure: str | None = None  # the harness could not finish the pass (dead kernel, ...)
    unrecorded: list[int] = field(default_factory=list)  # run indices missing from history()

    @property
    def errors(self) -> dict[int, Run]:
        return {run.index: run for run in self.runs if run.ename}

    @property
    def all_recorded(self) -> bool:
        return self.failure is None and self.marker is not None and not self.unrecorded


@dataclass
class NotebookResult:
    name: str
    flavour: str
    cells: list[str]
    passes: dict[str, PassResult] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # pass -> why it did not run
    new_errors: dict[str, list[Run]] = field(default_factory=dict)

    @property
    def reference(self) -> dict[int, str]:
        """Run index -> ename of the baseline: the plain pass, else the README's list."""
        if "plain" in self.passes:
            return {i: run.ename for i, run in self.passes["plain"].errors.items() if run.ename}
        return DOCUMENTED_BASELINE.get(self.name, {})

    @property
    def ok(self) -> bool:
        checked = [p for name, p in self.passes.items() if name != "plain"]
        return not any(self.new_errors.values()) and all(p.all_recorded for p in checked)


# -- running ------------------------------------------------------------------------


def notebook_paths(
    only: list[str] | None = None, corpus: Path = CORPUS, exact: bool = False
) -> list[Path]:
    paths = sorted(corpus.glob("*.ipynb"))
    if only:
        paths = [p for p in paths if any(w == p.stem if exact else w in p.stem for w in only)]
    return paths


def code_cells(path: Path) -> list[str]:
    """The sources of the code cells the corpus runs, in order."""
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    return [
        cell.source
        for cell in notebook.cells
        if cell.cell_type == "code" and cell.source.strip() and not SKIPPED_CELL.search(cell.source)
    ]


def flavour_of(name: str) -> str:
    return "tf_keras" if name in TF_KERAS_NOTEBOOKS else "keras3"


def kernel_env(flavour: str, tfmagic_path: str | None = None) -> dict[str, str]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("TF_USE_LEGACY_KERAS", None)
    if flavour == "tf_keras":
        env["TF_USE_LEGACY_KERAS"] = "1"
    if tfmagic_path:  # import tfmagic from there instead of the installed one
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [tfmagic_path, env.get("PYTHONPATH")]))
    return env


def _error_of(reply: dict[str, Any] | None, outputs: list[Any]) -> tuple[str, str, list[str]]:
    content = (reply or {}).get("content", {})
    if content.get("status") == "error":
        return content.get("ename", "?"), content.get("evalue", ""), content.get("traceback", [])
    for output in outputs:  # an error output without an error reply: count it too
        if output.get("output_type") == "error":
            return output.ename, output.evalue, output.traceback
    return "", "", []


def run_pass(
    cells: list[str],
    mode: str,
    flavour: str,
    timeout: int = CELL_TIMEOUT,
    tfmagic_path: str | None = None,
) -> PassResult:
    """Run every cell twice in a row in a fresh kernel and a fresh working directory."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    sources = [f"%%tf_isolated\n{s}" if mode == "isolated" else s for s in cells]
    setup = [] if mode == "plain" else ["%load_ext tfmagic"]
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(s) for s in [*setup, *sources, FINAL_CELL]]
    runs: list[Run] = []
    marker = failure = None
    wall = 0.0
    replies: dict[int, dict[str, Any]] = {}

    def on_cell_executed(cell: Any, cell_index: int, execute_reply: dict[str, Any]) -> None:
        replies[cell_index] = execute_reply

    with (
        tempfile.TemporaryDirectory(prefix="tfmagic-corpus-", ignore_cleanup_errors=True) as tmp,
        tempfile.TemporaryFile() as stderr,  # the kernel's own stderr (TF's C++ logging too)
    ):
        client = NotebookClient(
            notebook,
            timeout=timeout,
            kernel_name="python3",  # resolves to this Python (as examples/run_examples.py)
            allow_errors=True,
            interrupt_on_timeout=True,
            error_on_timeout={
                "ename": "CellTimeoutError",
                "evalue": f"the cell ran longer than {timeout} s and was interrupted",
                "traceback": [],
            },
            resources={"metadata": {"path": tmp}},
            on_cell_executed=on_cell_executed,
        )
        started = time.perf_counter()
        try:
            with client.setup_kernel(env=kernel_env(flavour, tfmagic_path), stderr=stderr):
                for i, cell in enumerate(notebook.cells):
                    is_setup, is_final = i < len(setup), i == len(notebook.cells) - 1
                    for repeat in (0,) if is_setup or is_final else (0, 1):
                        replies.pop(i, None)
                        client.execute_cell(cell, i)
                        reply = replies.get(i)
                        ename, evalue, traceback = _error_of(reply, cell.outputs)
                        if is_setup:
                            if ename:
                                raise RuntimeError(f"{cell.source!r} failed: {ename}: {evalue}")
                            continue
                        if is_final:
                            marker = _marker(cell.outputs)
                            continue
                        cell_number = i - len(setup)
                        count = (reply or {}).get("content", {}).get("execution_count")
                        runs.append(
                            Run(
                                index=2 * cell_number + repeat,
                                cell=cell_number,
                                execution_count=count,
                                ename=ename or None,
                                evalue=evalue,
                                traceback=[ANSI.sub("", line) for line in traceback],
                            )
                        )
                wall = time.perf_counter() - started  # kernel start included, shutdown not
        except (DeadKernelError, CellTimeoutError, RuntimeError) as exc:
            failure = f"{type(exc).__name__}: {exc}"
            stderr.seek(0)
            log = stderr.read().decode(errors="replace").strip()
            if log:  # what the kernel said last
                failure += "\n  kernel stderr (last lines):\n    " + "\n    ".join(
                    log.splitlines()[-8:]
                )
            wall = time.perf_counter() - started
    result = PassResult(name=mode, runs=runs, wall=wall, marker=marker, failure=failure)
    if mode != "plain":
        result.unrecorded = _unrecorded(result)
    return result


def _marker(outputs: list[Any]) -> dict[str, Any] | None:
    for output in outputs:
        if output.get("output_type") == "stream":
            for line in output.text.splitlines():
                if line.startswith(MARKER):
                    return json.loads(line[len(MARKER) :])
    return None


def _unrecorded(result: PassResult) -> list[int]:
    """Run indices that tfmagic.history() does not hold (by execution count, then by number)."""
    if result.marker is None or "recorded" not in result.marker:
        return [run.index for run in result.runs]
    recorded = set(result.marker["recorded"])
    missing = [run.index for run in result.runs if run.execution_count not in recorded]
    if not missing and result.marker.get("history") != len(result.runs):
        missing = [-1]  # the counts disagree although every run's number is there
    return missing


def new_errors(reference: dict[int, str], result: PassResult) -> list[Run]:
    """Runs that raised where the reference did not, or raised another exception type."""
    return [run for i, run in sorted(result.errors.items()) if reference.get(i) != run.ename]


def is_eager(cells: list[str]) -> bool:
    return not any(GRAPH_MODE.search(source) for source in cells)


def run_notebook(
    path: Path,
    passes: tuple[str, ...] | list[str] = PASSES,
    tfmagic_path: str | None = None,
    progress: Any = None,
) -> NotebookResult:
    name = path.stem
    cells = code_cells(path)
    result = NotebookResult(name=name, flavour=flavour_of(name), cells=cells)
    for mode in PASSES:
        if mode not in passes:
            continue
        if mode == "isolated":
            plain = result.passes.get("plain")
            if not is_eager(cells):
                result.skipped[mode] = "graph mode (a cell disables eager execution)"
                continue
            if plain is not None and plain.marker and plain.marker.get("eager") is False:
                result.skipped[mode] = "graph mode (the plain pass ended not executing eagerly)"
                continue
        if progress:
            progress(f"{name}: {mode} pass")
        result.passes[mode] = run_pass(cells, mode, result.flavour, tfmagic_path=tfmagic_path)
    for mode, outcome in result.passes.items():
        if mode != "plain":
            result.new_errors[mode] = new_errors(result.reference, outcome)
    return result


# -- reporting ----------------------------------------------------------------------

HEADER = (
    "| notebook | flavour | cells run | baseline errors (plain) | new errors tracked "
    "| new errors isolated | all runs recorded | tfmagic incidents | wall plain / tracked / "
    "isolated |\n|---|---|---|---|---|---|---|---|---|"
)


def _describe(errors: dict[int, str] | list[Run]) -> str:
    pairs = (
        [(run.index, run.ename or "") for run in errors]
        if isinstance(errors, list)
        else sorted(errors.items())
    )
    if not pairs:
        return "0"
    by_name: dict[str, list[int]] = {}
    for index, ename in pairs:
        by_name.setdefault(ename, []).append(index)
    parts = [
        f"run{'s' if len(ix) > 1 else ''} {_ranges(ix)} {ename}" for ename, ix in by_name.items()
    ]
    return f"{len(pairs)}: " + "; ".join(parts)


def _ranges(indices: list[int]) -> str:
    """[2, 3, 4, 5, 8, 9] -> '2-5, 8, 9': runs of three or more consecutive indices shortened."""
    groups: list[list[int]] = []
    for i in indices:
        if groups and i == groups[-1][-1] + 1:
            groups[-1].append(i)
        else:
            groups.append([i])
    return ", ".join(f"{g[0]}-{g[-1]}" if len(g) > 2 else ", ".join(map(str, g)) for g in groups)


def table_row(result: NotebookResult) -> str:
    plain = result.passes.get("plain")
    baseline = _describe(result.reference)
    if plain is None:
        baseline += " (documented)"
    elif plain.failure:
        baseline += f" (pass failed: {plain.failure})"

    def new(mode: str) -> str:
        if mode in result.skipped:
            return f"n/a: {result.skipped[mode]}"
        if mode not in result.passes:
            return "—"
        text = _describe(result.new_errors[mode])
        failure = result.passes[mode].failure
        return f"{text} (pass failed: {failure})" if failure else text

    checked = {m: p for m, p in result.passes.items() if m != "plain"}
    if not checked:
        recorded = "—"
    elif all(p.all_recorded for p in checked.values()):
        recorded = "yes"
    else:
        recorded = (
            "no ("
            + "; ".join(
                f"{m}: {len(p.runs) - len(p.unrecorded)}/{2 * len(result.cells)}"
                for m, p in checked.items()
                if not p.all_recorded
            )
            + ")"
        )
    incidents = sum(len((p.marker or {}).get("incidents", [])) for p in checked.values())
    walls = " / ".join(
        f"{result.passes[m].wall:.0f} s" if m in result.passes else "—" for m in PASSES
    )
    cells = f"{len(result.cells)} ({2 * len(result.cells)} runs)"
    return (
        f"| {result.name} | {result.flavour} | {cells} | {baseline} | {new('tracked')} "
        f"| {new('isolated')} | {recorded} | {incidents if checked else '—'} | {walls} |"
    )


def details(result: NotebookResult, tail: int = 8) -> str:
    """What an engineer needs to fix each problem: cell source, run index, error."""
    lines: list[str] = []
    plain = result.passes.get("plain")
    if plain is not None and not plain.failure:
        documented = DOCUMENTED_BASELINE.get(result.name, {})
        if result.reference != documented:
            lines.append(
                f"note: the plain pass's errors ({_describe(result.reference)}) differ from the "
                f"corpus README's ({_describe(documented)})"
            )
    for mode, runs in result.new_errors.items():
        for run in runs:
            source = result.cells[run.cell].splitlines()
            head = "\n".join("    | " + line for line in source[:8])
            more = f"\n    | ... ({len(source) - 8} more lines)" if len(source) > 8 else ""
            was = result.reference.get(run.index) or "no error"
            which = "first" if run.index % 2 == 0 else "second"
            lines += [
                f"NEW ERROR [{mode}] run {run.index} (cell {run.cell}, "
                f"{which} run; baseline: {was})",
                f"  {run.ename}: {run.evalue}",
                "  cell source:",
                head + more,
                "  traceback (last lines):",
                *["    " + line for text in run.traceback for line in text.splitlines()][-tail:],
            ]
    for mode, outcome in result.passes.items():
        if outcome.failure:
            lines.append(f"PASS FAILED [{mode}] {outcome.failure}")
        if mode == "plain":
            continue
        if outcome.marker is None and not outcome.failure:
            lines.append(f"UNRECORDED [{mode}] the final cell printed no marker")
        elif outcome.unrecorded:
            history = (outcome.marker or {}).get("history")
            lines.append(
                f"UNRECORDED [{mode}] tfmagic.history() has {history} records for "
                f"{len(outcome.runs)} cell runs; runs not recorded: {outcome.unrecorded}"
            )
        for incident in (outcome.marker or {}).get("incidents", []):
            lines.append(f"tfmagic incident [{mode}]:\n" + incident.rstrip())
    if lines:
        lines.insert(0, f"### {result.name} ({result.flavour})")
    return "\n".join(lines)


def report(result: NotebookResult) -> str:
    """The header, the row and the details of one notebook (for a test's failure message)."""
    return "\n".join(filter(None, [HEADER, table_row(result), details(result)]))


def to_json(result: NotebookResult) -> dict[str, Any]:
    data = asdict(result)
    data["reference"] = result.reference
    data["ok"] = result.ok
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", metavar="NAME_SUBSTRING", help="notebooks to run")
    parser.add_argument("--passes", default=",".join(PASSES), help="comma-separated subset")
    parser.add_argument("--json", metavar="OUT", help="write every run's outcome here")
    parser.add_argument("--quick", action="store_true", help=f"only the {len(QUICK)} CI notebooks")
    parser.add_argument(
        "--tfmagic-path",
        metavar="DIR",
        help="import tfmagic in the kernels from DIR (e.g. an exported commit)",
    )
    args = parser.parse_args(argv)
    passes = [p.strip() for p in args.passes.split(",") if p.strip()]
    unknown = set(passes) - set(PASSES)
    if unknown:
        parser.error(f"unknown passes {sorted(unknown)}; choose from {', '.join(PASSES)}")
    if not CORPUS.is_dir():  # scripts/bench.sh runs every benchmark, on any machine
        print(f"no notebook corpus at {CORPUS} (set TFMAGIC_CORPUS): nothing to run")
        return 0
    paths = notebook_paths(QUICK, exact=True) if args.quick else notebook_paths(args.only)
    if args.quick and args.only:
        paths = [p for p in paths if any(word in p.stem for word in args.only)]
    if not paths:
        parser.error(f"no notebook in {CORPUS} matches {args.only}")

    def progress(text: str) -> None:
        print(f"[corpus] {text}", file=sys.stderr, flush=True)

    results = []
    print(HEADER, flush=True)
    for path in paths:
        result = run_notebook(path, passes, args.tfmagic_path, progress)
        results.append(result)
        print(table_row(result), flush=True)
    problems = [d for d in map(details, results) if d]
    if problems:
        print("\n" + "\n\n".join(problems))
    if args.json:
        Path(args.json).write_text(json.dumps([to_json(r) for r in results], indent=1))
    bad = [r.name for r in results if not r.ok]
    print(
        f"\n{len(results) - len(bad)}/{len(results)} notebooks do no harm"
        + (f"; failing: {', '.join(bad)}" if bad else "")
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
