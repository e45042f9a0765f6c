"""The package's structure: dependencies point downward only (docs/architecture.md, "Layers"), checked by
walking every module's imports with ``ast`` (lazy imports inside functions included)."""

import ast
from pathlib import Path

import probpose

ROOT = Path(probpose.__file__).parent

# Lowest first. A module may import its own layer's package or any lower layer. Layer 0 is the
# foundation (no probpose imports above it); its modules may import each other.
LAYERS = [
    {"probpose", "errors", "files", "options", "parallel", "plots", "progress", "skeleton", "rotations"},
    {"data"},
    {"flows"},
    {"distributions"},
    {"models"},
    {"evaluation"},
    {"training"},
    {"synthesis", "style"},
    {"bench", "fitting"},
    {"cli"},
    {"__main__"},
]
LAYER = {name: k for k, names in enumerate(LAYERS) for name in names}


def _unit(module: str) -> str:
    """``probpose.data.store`` -> ``data``; ``probpose`` -> ``probpose``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "probpose"


def _modules():
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def _imports(module: str, path: Path):
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                yield ".".join(base + ([node.module] if node.module else [])), node.lineno
            elif node.module:
                yield node.module, node.lineno


def test_every_module_is_in_a_layer():
    units = {_unit(m) for m, _ in _modules()}
    assert units <= set(LAYER), f"modules outside any layer: {sorted(units - set(LAYER))}"


def test_no_module_imports_a_layer_above_its_own():
    bad = []
    for module, path in _modules():
        own = _unit(module)
        for target, line in _imports(module, path):
            if target.split(".")[0] in ("experiments", "benchmarks", "tests"):
                bad.append(f"{path.name}:{line} imports {target} (outside the library)")
                continue
            if not target.startswith("probpose"):
                continue
            unit = _unit(target)
            if LAYER[unit] > LAYER[own] or (LAYER[unit] == LAYER[own] > 0 and unit != own):
                bad.append(f"{module}:{line} ({own}, layer {LAYER[own]}) imports {target} (layer {LAYER[unit]})")
    assert not bad, "\n".join(bad)


def test_the_layering_test_catches_an_upward_import(tmp_path):
    """The check itself can fail: a data module importing training is flagged."""
    fake = tmp_path / "probpose" / "data"
    fake.mkdir(parents=True)
    (fake / "bad.py").write_text("from probpose.training import Trainer\n")
    found = list(_imports("probpose.data.bad", fake / "bad.py"))
    assert found == [("probpose.training", 1)]
    assert LAYER[_unit(found[0][0])] > LAYER["data"]
