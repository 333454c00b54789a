"""The library's layers (docs/ARCHITECTURE.md) hold: no import cycle between packages, no upward import."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = "monai_seq2seq"
OUTSIDE = ("benchmarks", "experiments")


def declared_layers(text: str) -> dict[str, int]:
    """``package -> layer`` from the markdown table whose header is ``| layer | packages | ...``."""
    layers: dict[str, int] = {}
    for match in re.finditer(r"^\|\s*(\d+)\s*\|\s*([\w, ]+?)\s*\|", text, flags=re.M):
        for package in match.group(2).split(","):
            layers[package.strip()] = int(match.group(1))
    return layers


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported_modules(path: Path, root: Path) -> list[tuple[str, int]]:
    """Every module ``path`` imports, at any depth of the file (function bodies included), made absolute."""
    name = module_name(path, root)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((target, node.lineno))
            # ``from monai_seq2seq import zoo`` imports the subpackage zoo
            if target == LIBRARY:
                found += [(f"{LIBRARY}.{alias.name}", node.lineno) for alias in node.names]
    return found


def owner(module: str) -> str | None:
    """The package a module belongs to: a library subpackage, or ``experiments`` / ``benchmarks``."""
    parts = module.split(".")
    if parts[0] == LIBRARY:
        return parts[1] if len(parts) > 1 else None
    return parts[0] if parts[0] in OUTSIDE else None


def import_edges(root: Path) -> list[tuple[str, str, str]]:
    """``(source package, target package, "file:line")`` for every import that crosses packages."""
    edges = []
    files = sorted((root / LIBRARY).rglob("*.py"))
    for folder in OUTSIDE:
        files += sorted((root / folder).rglob("*.py"))
    for path in files:
        source = owner(module_name(path, root))
        if source is None:
            continue
        for target_module, line in imported_modules(path, root):
            target = owner(target_module)
            if target is not None and target != source:
                edges.append((source, target, f"{path.relative_to(root)}:{line}"))
    return edges


def layer_violations(edges: list[tuple[str, str, str]], layers: dict[str, int]) -> list[str]:
    problems = []
    for source, target, where in edges:
        if source in OUTSIDE:
            if target in OUTSIDE:
                problems.append(f"{where}: {source} imports {target}; both are commands over the library only")
            continue
        if target in OUTSIDE:
            problems.append(f"{where}: the library imports {target}")
            continue
        for package in (source, target):
            if package not in layers:
                problems.append(f"{where}: package {package!r} has no layer in docs/ARCHITECTURE.md")
        if source in layers and target in layers and layers[target] >= layers[source]:
            kind = "a peer" if layers[target] == layers[source] else "a higher layer"
            problems.append(
                f"{where}: {source} (layer {layers[source]}) imports {target}, {kind} (layer {layers[target]})"
            )
    return problems


def package_cycles(edges: list[tuple[str, str, str]]) -> list[list[str]]:
    graph: dict[str, set[str]] = {}
    for source, target, _ in edges:
        graph.setdefault(source, set()).add(target)
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return cycles


@pytest.fixture(scope="module")
def layers() -> dict[str, int]:
    return declared_layers((ROOT / "docs" / "ARCHITECTURE.md").read_text())


def test_every_library_package_has_a_declared_layer(layers):
    packages = {p.name for p in (ROOT / LIBRARY).iterdir() if (p / "__init__.py").is_file()}
    assert packages == set(layers), f"declared in docs/ARCHITECTURE.md: {sorted(layers)}; on disk: {sorted(packages)}"
    assert not [p.name for p in (ROOT / LIBRARY).glob("*.py") if p.name != "__init__.py"], (
        "every library module belongs to a layered package; move top-level modules into one"
    )


def test_no_import_breaks_the_declared_layer_order(layers):
    problems = layer_violations(import_edges(ROOT), layers)
    assert not problems, "imports against docs/ARCHITECTURE.md:\n" + "\n".join(problems)


def test_no_import_cycle_between_packages():
    cycles = package_cycles(import_edges(ROOT))
    assert not cycles, f"package import cycles: {cycles}"


def test_the_checker_finds_upward_peer_and_function_level_imports(tmp_path, layers):
    """The walk sees imports inside functions and relative imports, and the rules reject what they should."""
    library = tmp_path / LIBRARY
    for package in ("core", "io", "transforms", "zoo"):
        (library / package).mkdir(parents=True)
        (library / package / "__init__.py").write_text("")
    (library / "__init__.py").write_text("")
    (library / "core" / "protocols.py").write_text("def f():\n    from ..zoo import pack\n")
    (library / "io" / "reader.py").write_text("from monai_seq2seq.transforms import utils\n")
    (library / "zoo" / "pack.py").write_text("from ..core import protocols\n")
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "table.py").write_text("def g():\n    import benchmarks.profile\n")
    edges = import_edges(tmp_path)
    problems = "\n".join(layer_violations(edges, layers))
    assert "core/protocols.py:2: core (layer 0) imports zoo, a higher layer" in problems
    assert "io/reader.py:1: io (layer 1) imports transforms, a peer" in problems
    assert "experiments/table.py:2: experiments imports benchmarks" in problems
    assert "zoo/pack.py" not in problems
    assert package_cycles(edges) == [["core", "zoo", "core"]]
