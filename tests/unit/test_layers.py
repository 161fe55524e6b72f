"""The package's layers, checked on the source (the import-linter contracts in pyproject.toml say the
same for `lint-imports` in CI): no import cycles, no module using another module's private names, and
boto3/botocore only where AWS is spoken to."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import grimp

PACKAGE = Path(__file__).resolve().parents[2] / "cutover"
# Where boto3 and botocore may be imported: the adapters (the production path's only AWS client),
# the emulator and the test doubles, and the guard's scripts (they run inside AWS Automation).
AWS_SPEAKERS = ("cutover.adapters", "cutover.sandbox", "cutover.testing", "cutover.guard_scripts")


def modules() -> dict[str, ast.Module]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = ast.parse(path.read_text(), str(path))
    return out


def graph() -> grimp.ImportGraph:
    sys.path.insert(0, str(PACKAGE.parent))
    try:
        return grimp.build_graph("cutover", include_external_packages=True, cache_dir=None)
    finally:
        sys.path.pop(0)


def cycles(g: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (imports inside functions count)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g.find_modules_directly_imported_by(v):
            if not w.startswith("cutover"):
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for m in sorted(x for x in g.modules if x.startswith("cutover")):
        if m not in index:
            visit(m)
    return found


def test_no_import_cycles():
    assert cycles(graph()) == []


def test_boto3_only_where_aws_is_spoken_to():
    g = graph()
    speakers = {m for m in g.modules if m.startswith("cutover")
                and g.find_modules_directly_imported_by(m) & {"boto3", "botocore"}}
    assert speakers, "the check sees no importer at all: it is broken"
    assert sorted(m for m in speakers if not m.startswith(AWS_SPEAKERS)) == []


def private_uses(name: str, tree: ast.Module) -> list[str]:
    """`from cutover.x import _y`, and `x._y` where x is a cutover module this module imported."""
    aliases, found = {}, []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cutover") and node.level == 0:
            for a in node.names:
                if a.name.startswith("_") and a.name != "__version__":
                    found.append(f"{name}: from {node.module} import {a.name}")
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("cutover"):
                    aliases[a.asname or a.name.split(".")[0]] = a.name
    own = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                and isinstance(node.value, ast.Name) and node.value.id in aliases and node.value.id not in own):
            found.append(f"{name}: {node.value.id}.{node.attr}")
    return found


def test_no_module_uses_another_modules_private_names():
    found = [use for name, tree in modules().items() for use in private_uses(name, tree)]
    assert found == []


def test_the_private_name_check_sees_a_violation():
    tree = ast.parse("from cutover.commands import orchestrator\nfrom cutover.core.state import _parse\norchestrator._finish(1)\n")
    assert private_uses("x", tree) == ["x: from cutover.core.state import _parse", "x: orchestrator._finish"]


def test_check_types_sit_under_the_loader_and_the_runner():
    """`cutover.checks` (one module per check type) is imported by plan/, gates/, compile/ and sandbox/,
    and imports none of them: the one list is reachable from every layer that needs it."""
    g = graph()
    types = {m for m in g.modules if m.startswith("cutover.checks")}
    assert {"cutover.checks.env", "cutover.checks.command", "cutover.checks.interface"} <= types
    above = ("cutover.plan", "cutover.gates", "cutover.compile", "cutover.core", "cutover.sandbox", "cutover.commands",
             "cutover.cli", "cutover.adapters")
    assert sorted(f"{m} -> {w}" for m in types for w in g.find_modules_directly_imported_by(m) if w.startswith(above)) == []
    users = {m.split(".")[1] for m in g.find_modules_that_directly_import("cutover.checks")}
    assert {"plan", "gates", "compile", "sandbox"} <= users
