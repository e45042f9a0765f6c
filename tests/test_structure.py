"""The package's structure: dependencies point downward only (docs/architecture.md, "Layers"), checked by
walking every module's imports with ``ast`` (lazy imports inside functions included)."""

import ast
from pathlib import Path

import probpose

ROOT = Path(probpose.__file__).parent

# Lowest first. A module may import its own layer's package or any lower layer. Layer 0 is the
# foundation (no probpose imports above it); its modules may import each other.
LAYERS = [
    {
        "probpose",
        "errors",
        "files",
        "safe_yaml",
        "options",
        "parallel",
        "plots",
        "progress",
        "skeleton",
        "rotations",
        "kinematics",
        "reports",
        "signals",
        "machine",
    },
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


def _cli_flags() -> set[str]:
    """Every option string of the ``probpose`` parser and its subcommands (``--fps``, ...)."""
    from probpose.cli import build_parser
    from probpose.cli.main import flags_of

    return flags_of(build_parser()) - {"--help", "--version"}


def _message_strings(path: Path):
    """String constants of a module that are not docstrings (messages, f-string pieces), with lines."""
    tree = ast.parse(path.read_text(), str(path))
    docs = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list):
            for stmt in body:  # module/class/function docstrings and attribute docstrings
                if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                    docs.add(id(stmt.value))
        if isinstance(node, ast.Call) and "subprocess" in ast.unparse(node.func):
            for arg in ast.walk(node):  # another program's command line: its flags are its own
                docs.add(id(arg))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            yield node.value, node.lineno


def _flag_mentions(flags: set[str], files) -> list[str]:
    import re

    pattern = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")
    found = []
    for path in files:
        for text, line in _message_strings(path):
            found += [f"{path.name}:{line}: {m}" for m in pattern.findall(text) if m in flags]
    return found


def test_no_library_module_names_a_cli_flag():
    """Library errors name parameters, not flags: only the CLI knows its flags (it says which flag
    a parameter came from)."""
    flags = _cli_flags()
    assert {"--fps", "--overwrite", "--step"} <= flags  # the walk sees the subcommands' flags
    library = [
        p for p in sorted(ROOT.rglob("*.py")) if "cli" not in p.relative_to(ROOT).parts[:1] and p.name != "__main__.py"
    ]
    assert _flag_mentions(flags, library) == []


def test_the_cli_shows_parameters_named_in_messages_as_its_flags():
    from probpose.cli import as_flags

    flags = _cli_flags()
    text = "cannot be read; skip it (`skip_bad`), or give `rest_joints`; `not_an_option` stays"
    assert as_flags(text, flags) == "cannot be read; skip it (--skip-bad), or give --rest-joints; `not_an_option` stays"


def test_the_flag_check_catches_a_flag_in_a_message(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        '"""Docstrings may say --overwrite."""\n\n\ndef f(step):\n    raise ValueError(f"{step}: pass --overwrite")\n'
    )
    assert _flag_mentions({"--overwrite"}, [bad]) == ["bad.py:5: --overwrite"]


def test_importing_fitting_loads_neither_the_renderer_nor_pil():
    """Kinematics live in the core: a fit needs forward kinematics and cameras, not images."""
    import subprocess
    import sys

    code = (
        "import sys, probpose.fitting, probpose.kinematics\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'PIL' or m.startswith(('probpose.synthesis', "
        "'probpose.style'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out
    control = code.replace("import sys, probpose.fitting", "import sys, probpose.synthesis")  # the check can fail
    out = subprocess.run([sys.executable, "-c", control], capture_output=True, text=True, check=True).stdout
    assert "probpose.synthesis.render" in out and "'PIL'" in out


def test_every_data_file_in_the_package_is_declared_package_data():
    """A wheel holds only what ``setup.cfg`` declares: every non-Python file under ``probpose/``
    (configs, shipped priors and decoder, bundled data) must match a ``package_data`` pattern."""
    import configparser
    import fnmatch

    cfg = configparser.ConfigParser()
    cfg.read(ROOT.parent / "setup.cfg")
    patterns = []
    for package, lines in cfg["options.package_data"].items():
        base = Path(*package.split("."))
        patterns += [(base / line.strip()).as_posix() for line in lines.splitlines() if line.strip()]
    files = [
        p.relative_to(ROOT.parent).as_posix()
        for p in ROOT.rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
    ]
    assert any(f.endswith("configs/joint_flow.yaml") for f in files)
    missing = [f for f in files if not any(fnmatch.fnmatch(f, pat) for pat in patterns)]
    assert missing == [], missing


def _unforked_seeds(path: Path) -> list[int]:
    """Lines of ``path`` that call ``torch.manual_seed`` outside a ``with ... fork_rng(...)`` block."""
    tree = ast.parse(path.read_text(), str(path))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "torch.manual_seed":
            up, forked = node, False
            while up in parents and not forked:
                up = parents[up]
                forked = isinstance(up, ast.With) and any("fork_rng" in ast.unparse(i.context_expr) for i in up.items)
            if not forked:
                bad.append(node.lineno)
    return bad


def test_the_library_seeds_torch_only_inside_fork_rng():
    """No global RNG seeding in the library: a seed is set inside ``torch.random.fork_rng``, so the
    caller's random state is the same after the call."""
    found = {p.name: lines for p in sorted(ROOT.rglob("*.py")) if (lines := _unforked_seeds(p))}
    assert found == {}


def test_the_seed_check_catches_a_global_seed(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import torch\n\n\ndef f():\n    with torch.random.fork_rng():\n        torch.manual_seed(0)\n"
        "    torch.manual_seed(1)\n"
    )
    assert _unforked_seeds(bad) == [7]
