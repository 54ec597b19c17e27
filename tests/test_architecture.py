"""The house stays one-way: no module imports a folder above its own, the stages do not import
each other, no module grows past ~400 lines, and docs/ARCHITECTURE.md names only what exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Floor of each folder of the installed package (docs/ARCHITECTURE.md); the stages share floor 4.
FLOORS = {"schemas": 1, "infra": 2, "vision": 3, "producers": 4, "processors": 4, "sinks": 4, "training": 5,
          "facestream": 6}
MAX_LINES = 400


def _modules() -> list[Path]:
    return sorted(p for folder in FLOORS for p in (ROOT / folder).rglob("*.py"))


def _imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
    return out


def test_imports_point_down():
    wrong = []
    for path in _modules():
        home = path.relative_to(ROOT).parts[0]
        for line, module in _imports(path):
            top = module.split(".")[0]
            if top in FLOORS and top != home and FLOORS[top] >= FLOORS[home]:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {module} (floor {FLOORS[top]} from "
                             f"floor {FLOORS[home]})")
    assert not wrong, "imports that run up or across:\n" + "\n".join(wrong)


def test_the_schemas_import_nothing_of_ours():
    for path in (ROOT / "schemas").rglob("*.py"):
        assert all(m.split(".")[0] in ("schemas",) or m.split(".")[0] not in FLOORS for _, m in _imports(path)), path


def test_no_module_is_too_long():
    long = [f"{p.relative_to(ROOT)} ({n} lines)" for p in _modules()
            if (n := len(p.read_text().splitlines())) > MAX_LINES]
    assert not long, "split these by what they do: " + ", ".join(long)


@pytest.mark.parametrize("doc", ["docs/ARCHITECTURE.md"])
def test_the_architecture_doc_names_only_what_exists(doc):
    text = (ROOT / doc).read_text()
    for ref in set(re.findall(r"`([a-z_]+/[a-z_/]+\.py)(?::([A-Za-z_.]+))?`", text)):
        path, name = ref
        assert (ROOT / path).exists(), f"{doc} names {path}, which does not exist"
        if name:
            source = (ROOT / path).read_text()
            for part in name.split("."):
                assert re.search(rf"\b(def|class|async def) {part}\b|^{part} =", source, re.M), \
                    f"{doc} names {path}:{name}, which is not defined there"
    for folder in FLOORS:
        assert f"`{folder}/`" in text, f"{doc} does not say what {folder}/ holds"
