"""Run a cell body inside a cell magic so that its errors fail the outer cell.

``shell.run_cell`` would print the body's traceback and swallow the error, and a
notebook's Run All would march on. Like ``%%time``, this compiles the body itself
and evaluates a trailing expression, whose value the magic returns (and IPython shows).
"""

from __future__ import annotations

import ast
from typing import Any


def run_cell_body(shell: Any, cell: str) -> Any:
    __tracebackhide__ = True
    source = shell.transform_cell(cell)
    module = shell.transform_ast(shell.compile.ast_parse(source))
    last = None
    if module.body and isinstance(module.body[-1], ast.Expr):
        last = ast.Expression(module.body.pop().value)
    # Cached under this cell's number, so tracebacks show the body's lines as In[N].
    filename = shell.compile.cache(source, shell.execution_count - 1)
    namespace = shell.user_ns
    exec(shell.compile(module, filename, "exec"), namespace)
    if last is None:
        return None
    return eval(shell.compile(last, filename, "eval"), namespace)
