"""No page writes developer text: Streamlit's "magic" shows a bare string statement of a page
script as a paragraph (a "docstring" after a constant is one, and so is a class's), so only
the module's and functions' docstrings may be bare strings in ``dashboard/views/``."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import List

import pytest

VIEWS = sorted((Path(__file__).resolve().parents[2] / "dashboard" / "views").glob("*.py"))


def _docstrings(tree: ast.Module) -> set:
    """The statements Streamlit's magic takes for docstrings: first in the module's or a
    function's body (not a class's: magic writes a class docstring out)."""
    owners = [tree] + [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    return {id(o.body[0]) for o in owners if o.body}


def bare_strings(source: str) -> List[int]:
    """Line numbers of string-literal expression statements that are not docstrings."""
    tree = ast.parse(source)
    allowed = _docstrings(tree)
    return [n.lineno for n in ast.walk(tree)
            if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)
            and id(n) not in allowed]


def test_bare_strings_finds_a_string_after_an_assignment_and_in_a_with_block() -> None:
    source = ('"""doc"""\nX = 1\n"""about X"""\nwith a:\n    "shown"\ndef f():\n    """doc"""\n'
              'class C:\n    """shown too"""\n')
    assert bare_strings(source) == [3, 5, 9]


@pytest.mark.parametrize("path", VIEWS, ids=lambda p: p.name)
def test_view_has_no_bare_string_statement(path: Path) -> None:
    assert VIEWS, "no view files found"
    assert bare_strings(path.read_text(encoding="utf-8")) == [], f"{path.name}: Streamlit magic would show these"
