"""docs/architecture.md's picture of the layers is the code's import graph: every arrow it draws is
an import of the code, every import between layers is drawn, and the layers form no circle."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
FACE = "precal/__init__.py"


def _layers() -> Dict[str, List[str]]:
    """layer -> its paths, from the page's table (a folder ends with "/")."""
    layers = {}
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[1].startswith("`"):
            layers[cells[0]] = re.findall(r"`([^`]+)`", cells[1])
    return layers


def _arrows() -> Set[Tuple[str, str]]:
    block = DOC.read_text().split("```mermaid", 1)[1].split("```", 1)[0]
    return set(re.findall(r"^\s*(\w+) --> (\w+)\s*$", block, flags=re.M))


def _app_package() -> Set[str]:
    """The layers drawn inside the app's package (the ``app_pkg`` subgraph)."""
    block = DOC.read_text().split("```mermaid", 1)[1].split("```", 1)[0]
    inner = block.split("subgraph app_pkg", 1)[1].split("\n  end", 1)[0]
    return set(re.findall(r"^\s*(\w+)\[", inner, flags=re.M))


def _layer_of(path: str, layers: Dict[str, List[str]]) -> Optional[str]:
    best = None
    for name, paths in layers.items():
        for p in paths:
            if path == p or (p.endswith("/") and path.startswith(p)):
                if best is None or len(p) > best[1]:
                    best = (name, len(p))
    return best[0] if best else None


def _file_of(module: str) -> Optional[str]:
    parts = module.split(".")
    if parts[:2] == ["precal", "dashboard"]:
        base = ROOT.joinpath("dashboard", *parts[2:])
    else:
        base = ROOT.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate.relative_to(ROOT).as_posix()
    return None


def _imports() -> Dict[Tuple[str, str], List[str]]:
    """(importer, imported) file pairs of the three packages, function-level imports included."""
    found: Dict[Tuple[str, str], List[str]] = {}
    for folder in ("precal", "dashboard", "experiments"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    modules = [n.name for n in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    modules = [f"{node.module}.{n.name}" if _file_of(f"{node.module}.{n.name}") else node.module
                               for n in node.names]
                else:
                    continue
                for module in modules:
                    target = _file_of(module) if module.split(".")[0] in ("precal", "experiments") else None
                    if target and FACE not in (rel, target):
                        found.setdefault((rel, target), []).append(module)
    return found


def test_the_picture_is_the_import_graph() -> None:
    layers = _layers()
    assert {"app", "backend", "runtime", "cli", "training", "robustness", "data"} <= set(layers)
    code: Dict[Tuple[str, str], List[str]] = {}
    for (a, b) in _imports():
        la, lb = _layer_of(a, layers), _layer_of(b, layers)
        assert la is not None, f"{a} is on no layer of docs/architecture.md"
        if la != lb:
            code.setdefault((la, lb), []).append(f"{a} -> {b}")
    drawn = _arrows()
    undrawn = {k: v[:3] for k, v in code.items() if k not in drawn}
    assert not undrawn, f"imports docs/architecture.md does not draw: {undrawn}"
    assert not drawn - set(code), f"arrows no import backs: {sorted(drawn - set(code))}"


def test_the_layers_form_no_circle() -> None:
    arrows = _arrows()
    graph: Dict[str, Set[str]] = {}
    for a, b in arrows:
        graph.setdefault(a, set()).add(b)
    state: Dict[str, int] = {}

    def visit(node: str, path: List[str]) -> None:
        state[node] = 1
        for nxt in graph.get(node, ()):
            assert state.get(nxt) != 1, f"a circle: {' -> '.join(path + [node, nxt])}"
            if nxt not in state:
                visit(nxt, path + [node])
        state[node] = 2

    for node in list(graph):
        if node not in state:
            visit(node, [])
    assert not any(b == "experiments" for _, b in arrows)
    app_package = _app_package()
    assert {"app", "backend", "runtime"} <= app_package
    assert not any(a not in app_package and b in ("app", "backend") for a, b in arrows)


def test_the_app_backend_imports_no_streamlit() -> None:
    """dashboard/backend/ computes everything the pages show and is unit-tested without a server."""
    for path in sorted((ROOT / "dashboard" / "backend").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [n.name for n in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n.split(".")[0] == "streamlit" for n in names), f"{path.name} imports Streamlit"
