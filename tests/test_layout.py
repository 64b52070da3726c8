"""The house rules of issue 21 as tests: no import cycle in the package, no package file past ~450 lines, no
``sys.path`` edits in scripts, and every module of the package imports on its own."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "nemo_aligner_plugin"
MAX_LINES = 450


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def top_level_imports(path: Path, known: set[str]) -> set[str]:
    """Package modules imported at module level (not inside functions: those are deliberate late imports)."""
    found = set()
    this = module_name(path)
    for node in ast.parse(path.read_text()).body:
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != this and not this.startswith(name + "."):  # a package's own __init__ is no edge
                found.add(name)
    return found


@pytest.mark.unit
def test_no_import_cycle_in_the_package():
    modules = package_modules()
    graph = {name: top_level_imports(path, set(modules)) for name, path in modules.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        stack.append(name)
        for dep in sorted(graph[name]):
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep) :] + [dep]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[name] = 2

    for name in graph:
        if name not in state:
            visit(name)


@pytest.mark.unit
def test_no_package_file_holds_two_concepts_by_size():
    sizes = {str(p.relative_to(REPO)): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    long = {name: lines for name, lines in sizes.items() if lines > MAX_LINES}
    assert not long, f"files over {MAX_LINES} lines (split them by concept): {long}"


@pytest.mark.unit
def test_scripts_import_the_package_not_each_other():
    edits = [
        str(p.relative_to(REPO))
        for folder in ("recipes", "benchmarks", "tests")
        for p in (REPO / folder).rglob("*.py")
        if p != Path(__file__) and any(f"sys.path.{verb}(" in p.read_text() for verb in ("insert", "append"))
    ]
    assert not edits, f"sys.path edits: {edits}"


@pytest.mark.unit
@pytest.mark.parametrize("name", sorted(n for n in package_modules() if not n.endswith("__main__")))
def test_every_module_imports(name):
    importlib.import_module(name)


@pytest.mark.unit
def test_the_0_1_finetune_path_keeps_working_with_a_deprecation_warning():
    import subprocess
    import sys

    code = (
        "import warnings\nimport nemo_aligner_plugin.model\n"  # the heavy imports first: torch warns on its own
        "warnings.simplefilter('error', DeprecationWarning)\n"
        "try:\n    import nemo_aligner_plugin.finetune\nexcept DeprecationWarning as w:\n    print('warned:', w)\n"
        "warnings.simplefilter('ignore')\n"
        "from nemo_aligner_plugin.finetune import EncoderFreezer, from_asr_model\n"
        "from nemo_aligner_plugin import AlignerEncoderModel, integration\n"
        "assert from_asr_model == AlignerEncoderModel.from_asr_model\n"
        "assert EncoderFreezer is integration.finetune.EncoderFreezer\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert "warned: nemo_aligner_plugin.finetune is deprecated" in out.stdout
