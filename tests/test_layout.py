"""The package's shape: no import circles, lower layers never import higher ones, and no
``argparse.Namespace`` below the command line (library functions take typed dataclasses).

Imports are read with ``ast`` from every module under ``src/scratchgpt`` (module level,
function level and ``TYPE_CHECKING`` alike), so a circle hidden in a function still fails.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "scratchgpt"
# A module may import its own layer and the layers below it, never one above.
LAYERS = {
    "arguments": 0,
    "paths": 0,
    "precision": 0,
    "tokenizer": 0,
    "download": 0,
    "files": 0,
    "folder": 0,
    "weight_files": 0,
    "run_record": 0,
    "metrics": 0,
    "weights": 1,
    "data": 1,
    "inference": 2,
    "hub": 2,
    "training": 3,
    "app": 3,  # the browser app: inference + the card facts of hub
    "api_names": 0,  # the list of the API's names, which the package root needs
    "api": 4,  # the Python API and the command lines over every capability
    "cli": 4,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imported_modules(name: str) -> set[str]:
    """The scratchgpt modules ``name`` imports (``from pkg import sub`` counts as ``pkg.sub``)."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else node.module)
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: imported_modules(name) for name in MODULES}


def layer(name: str) -> int | None:
    parts = name.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def test_every_module_has_a_layer():
    assert [name for name in MODULES if name != "scratchgpt" and layer(name) is None] == []


def test_lower_layers_never_import_higher_ones():
    upward = [
        f"{name} -> {dep}"
        for name, deps in GRAPH.items()
        for dep in deps
        if layer(name) is not None and layer(dep) is not None and layer(dep) > layer(name)
    ]
    assert not upward


def test_no_import_circle():
    circles = []
    state: dict[str, str] = {}  # "visiting" while on the stack, "done" after

    def visit(name: str, stack: list[str]) -> None:
        state[name] = "visiting"
        for dep in sorted(GRAPH[name]):
            if state.get(dep) == "visiting":
                circles.append(" -> ".join([*stack[stack.index(dep) :], dep]))
            elif dep not in state:
                visit(dep, [*stack, dep])
        state[name] = "done"

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])
    assert not circles


def test_no_namespace_below_the_command_line():
    """Functions take the typed dataclasses (``FinetuneArguments``, ...), never a Namespace."""
    # argparse's Namespace (``SimpleNamespace``, a config.json read as attributes, is no flag set)
    mentions = [str(p) for p in MODULES.values() if re.search(r"\bNamespace\b", p.read_text())]
    assert not mentions
    untyped = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for param in [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]:
                    hint = ast.unparse(param.annotation) if param.annotation else ""
                    if param.arg == "args" and not hint:  # a Namespace in disguise
                        untyped.append(f"{name}.{node.name}({param.arg}: {hint or '?'})")
    assert not untyped
