"""Layering (STYLE.md "layers that only look down"): the core never imports the gateway or admin,
and only the chooser, broker/_accel.py, imports the compiled ``_speedups``."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BROKER = ROOT / "broker"
GATEWAY = BROKER / "gateway"


def imported_modules(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    if path.name == "__init__.py":
        package = ".".join(path.relative_to(ROOT).parts[:-1])
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.JoinedStr | ast.Constant)
        ):
            # importlib.import_module("x") / (f"_speedups.{name}"): take the literal head.
            first = node.args[0]
            head = first.values[0] if isinstance(first, ast.JoinedStr) else first
            if isinstance(head, ast.Constant) and isinstance(head.value, str):
                names.add(head.value.rstrip("."))
    return names


# The command line is the composition root: it wires the layers together, so it may import
# every one of them; it is not part of the core.
COMPOSITION_ROOTS = {BROKER / "cli.py"}


def core_modules() -> list[Path]:
    return [
        path for path in sorted(BROKER.rglob("*.py"))
        if GATEWAY not in path.parents and path not in COMPOSITION_ROOTS
    ]


def is_under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_scanner_sees_imports() -> None:
    """The scan finds the imports of a known module (so the checks below can fail)."""
    names = imported_modules(BROKER / "core" / "broker.py")
    assert "broker.hooks" in names
    assert "broker.routing.retained" in names
    assert any(is_under(n, "_speedups") for n in imported_modules(BROKER / "_accel.py"))


def test_core_imports_no_gateway_or_admin() -> None:
    """No module of broker/ outside broker/gateway/ imports broker.gateway or admin."""
    modules = core_modules()
    assert len(modules) > 20
    offenders = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in modules
        for name in imported_modules(path)
        if is_under(name, "broker.gateway") or is_under(name, "admin")
    }
    assert not offenders, sorted(offenders)


def test_speedups_only_imported_by_the_chooser() -> None:
    """Only broker/_accel.py imports _speedups; everything else goes through the chooser."""
    offenders = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in sorted(BROKER.rglob("*.py"))
        if path != BROKER / "_accel.py"
        for name in imported_modules(path)
        if is_under(name, "_speedups")
    }
    assert not offenders, sorted(offenders)


def test_gateway_imports_no_admin() -> None:
    """The IoT Connector domain (broker/gateway/) sits below the HTTP sidecar (admin/)."""
    modules = sorted(GATEWAY.rglob("*.py"))
    assert len(modules) > 15
    offenders = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in modules
        for name in imported_modules(path)
        if is_under(name, "admin")
    }
    assert not offenders, sorted(offenders)
