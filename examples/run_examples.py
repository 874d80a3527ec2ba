"""Execute the example notebooks in a real Jupyter kernel and print what tfmagic reported.

    python examples/run_examples.py            # every examples/*.ipynb
    python examples/run_examples.py --write    # also save the executed notebooks' outputs
    python examples/run_examples.py quickstart # only notebooks whose name contains this

A cell tagged ``raises-exception`` is expected to fail (it shows a problem users hit);
any other error fails the run with exit code 1.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent


def execute(path: Path, timeout: int = 600) -> nbformat.NotebookNode:
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    # The kernel process's own stderr carries only TensorFlow's absl/oneDNN/CUDA start-up
    # lines and Jupyter's transport warnings; cell output (tfmagic's included) travels
    # over the kernel's messages, so the report loses nothing.
    client.execute(stderr=subprocess.DEVNULL)
    return notebook


def output_text(output: nbformat.NotebookNode) -> str:
    if output.output_type == "stream":
        return output.text
    if output.output_type == "error":
        return f"{output.ename}: {output.evalue}\n"
    data = output.get("data", {})
    return str(data.get("text/plain", "")) + "\n"


def report(notebook: nbformat.NotebookNode) -> list[str]:
    """The lines tfmagic produced: magic outputs and its one-line notices."""
    lines = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        uses_tfmagic = "%tf_" in cell.source or "tfmagic." in cell.source
        for output in cell.get("outputs", []):
            text = output_text(output)
            if uses_tfmagic or "tfmagic" in text or output.output_type == "error":
                head = cell.source.splitlines()[0] if cell.source else ""
                lines.append(f"[{cell.get('execution_count')}] {head}")
                lines.extend("    " + line for line in text.rstrip().splitlines())
    return lines


def unexpected_errors(notebook: nbformat.NotebookNode) -> list[str]:
    errors = []
    for cell in notebook.cells:
        expected = "raises-exception" in cell.get("metadata", {}).get("tags", [])
        for output in cell.get("outputs", []):
            if output.output_type == "error" and not expected:
                errors.append(f"{output.ename}: {output.evalue} in cell: {cell.source[:80]!r}")
    return errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("only", nargs="*", help="run notebooks whose name contains this")
    parser.add_argument("--write", action="store_true", help="save outputs into the notebooks")
    args = parser.parse_args(argv)
    paths = sorted(HERE.glob("*.ipynb"))
    if args.only:
        paths = [p for p in paths if any(word in p.stem for word in args.only)]
    failed = False
    for path in paths:
        print(f"=== {path.name}")
        notebook = execute(path)
        print("\n".join(report(notebook)))
        errors = unexpected_errors(notebook)
        for error in errors:
            print(f"UNEXPECTED ERROR: {error}")
        failed |= bool(errors)
        if args.write:
            nbformat.write(notebook, path)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
