"""The module picture of docs/architecture.md, enforced: data flows one way between the layers."""

from __future__ import annotations

import ast
from pathlib import Path

import mobilebuild

PACKAGE = Path(mobilebuild.__file__).resolve().parent

# Lowest first. A module may import its own layer and the layers below it, never one above.
LAYERS = [
    ("base", {"mobilebuild", "errors", "console", "runner", "fsutil", "paths", "config", "templating",
              "profiles", "defaults", "versions", "choices"}),
    ("net", {"net"}),
    ("toolchain", {"toolchain"}),
    ("graphs", {"graphs"}),
    ("tf", {"tf"}),
    ("apps", {"apps"}),
    ("cli", {"cli", "__main__"}),
]

def _modules() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = path
    return mods


def _imports(name: str, path: Path, mods: dict[str, Path]):
    """(target module, is function-local, line) for every import of our own modules."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    local_lines = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                if isinstance(inner, (ast.Import, ast.ImportFrom)):
                    local_lines.add(inner.lineno)
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module in mods:
                targets.append(module)
            targets += [f"{module}.{a.name}" for a in node.names if f"{module}.{a.name}" in mods]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names if a.name in mods]
        for target in targets:
            if target != name:
                yield target, node.lineno in local_lines, node.lineno


def _layer(name: str) -> int:
    parts = name.split(".")
    key = parts[1] if len(parts) > 1 else "mobilebuild"
    for index, (_, members) in enumerate(LAYERS):
        if key in members:
            return index
    raise AssertionError(f"{name} belongs to no layer of docs/architecture.md: add it to LAYERS")


def _graph():
    mods = _modules()
    return mods, {name: list(_imports(name, path, mods)) for name, path in mods.items()}


def test_every_module_has_a_layer():
    for name in _modules():
        _layer(name)


def test_imports_only_go_down_the_layers():
    mods, edges = _graph()
    wrong = []
    for name, imports in edges.items():
        for target, _, line in imports:
            if target == "mobilebuild":
                continue
            if _layer(target) > _layer(name):
                wrong.append(f"{mods[name].relative_to(PACKAGE.parent)}:{line} imports {target}")
    assert not wrong, "imports that go up the layers:\n" + "\n".join(wrong)


def test_graphs_and_the_tree_do_not_know_each_other_beyond_the_rule():
    # graphs/ is the model toolkit: it must run without any TensorFlow source tree or app.
    _, edges = _graph()
    for name, imports in edges.items():
        if name.startswith("mobilebuild.graphs"):
            assert not [t for t, _, _ in imports if t.split(".")[1:2] in (["tf"], ["apps"], ["toolchain"])], name


# Function-local imports of our own modules outside cli/ (module -> the one-line reason). Only
# TensorFlow, numpy, PIL and LiteRT are imported lazily below cli/; our own modules load at the
# top, so an import cycle cannot hide inside a function. Keep this a handful at most.
LOCAL_IMPORTS_ALLOWED: dict[str, str] = {}
MAX_LOCAL_IMPORTS_OUTSIDE_CLI = 5


def test_no_import_cycles_counting_imports_inside_functions():
    _, edges = _graph()
    graph = {name: {t for t, _, _ in imports if t != "mobilebuild"} for name, imports in edges.items()}
    index, low, stack, on_stack, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_function_local_imports_of_our_modules_are_rare_outside_cli():
    mods, edges = _graph()
    local = [
        f"{mods[name].relative_to(PACKAGE.parent)}:{line} {target}"
        for name, imports in edges.items()
        if not name.startswith("mobilebuild.cli")
        for target, is_local, line in imports
        if is_local and name not in LOCAL_IMPORTS_ALLOWED
    ]
    assert not local, "import these at module top (or add the module with its reason to LOCAL_IMPORTS_ALLOWED):\n" + "\n".join(local)
    assert len(LOCAL_IMPORTS_ALLOWED) <= MAX_LOCAL_IMPORTS_OUTSIDE_CLI
