"""The two worlds stay apart: the add-on never imports torch, the backend never imports bpy."""
import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "addon": {"torch", "transformers", "scipy", "safetensors", "peft", "accelerate", "trl", "irmogen"},
    "backend": {"bpy", "mathutils", "bpy_extras", "addon_utils"},
}


def imported_modules(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module.split(".")[0]


@pytest.mark.parametrize("side", sorted(FORBIDDEN))
def test_no_forbidden_imports(side):
    bad = [f"{p.relative_to(REPO)}:{line} imports {mod}"
           for p in sorted((REPO / side).rglob("*.py"))
           for line, mod in imported_modules(p) if mod in FORBIDDEN[side]]
    assert not bad, "\n".join(bad)
