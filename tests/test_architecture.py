"""The house stays as drawn in ARCHITECTURE.md: imports run from the roof down, no cycles."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
PACKAGES: list[str] = CONFIG["root_packages"]


def test_import_contracts_are_kept() -> None:
    """import-linter's layers contract (pyproject.toml) holds for the whole tree."""
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint), "--config", str(ROOT / "pyproject.toml")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PACKAGES, include_external_packages=False)


def test_no_package_imports_another_in_a_cycle(graph: grimp.ImportGraph) -> None:
    """No two top-level packages import each other, directly or through others."""
    cycles = [(a, b) for a in PACKAGES for b in PACKAGES if a < b
              and graph.chain_exists(importer=a, imported=b, as_packages=True)
              and graph.chain_exists(importer=b, imported=a, as_packages=True)]
    assert not cycles, f"packages importing each other: {cycles}"


def test_nothing_imports_the_roof(graph: grimp.ImportGraph) -> None:
    """Only the roof itself imports ``readygate`` (the console script enters there)."""
    importers = {m for m in graph.find_modules_that_directly_import("readygate")
                 if not m.startswith("readygate")}
    for module in graph.find_children("readygate"):
        importers |= {m for m in graph.find_modules_that_directly_import(module)
                      if not m.startswith("readygate")}
    assert not importers, f"modules below the roof import it: {sorted(importers)}"


def test_the_contract_is_real(tmp_path: Path) -> None:
    """An upward import breaks the contract (the check can fail)."""
    for pkg in PACKAGES:
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / "core" / "bad.py").write_text("import scenarios\n")
    config = tmp_path / "contracts.toml"
    layers = CONFIG["contracts"][0]["layers"]
    config.write_text("[tool.importlinter]\nroot_packages = " + repr(PACKAGES).replace("'", '"')
                      + "\n[[tool.importlinter.contracts]]\nname = \"layers\"\ntype = \"layers\"\n"
                      "layers = " + repr(layers).replace("'", '"') + "\n")
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint), "--config", str(config)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=False,
                          env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert proc.returncode != 0
    assert "core.bad -> scenarios" in proc.stdout


def test_no_source_file_is_over_800_lines() -> None:
    """Big files hide their plan: every module stays under 800 lines."""
    big = {str(p.relative_to(ROOT)): n for pkg in [*PACKAGES, "bench"]
           for p in (ROOT / pkg).rglob("*.py")
           if (n := len(p.read_text(encoding="utf-8").splitlines())) > 800}
    assert not big, big
