"""`make test-unit` selects by marker: an integration module without one would run
there, where no server is set up, and fail."""

import ast
from pathlib import Path

import pytest

INTEGRATION = Path(__file__).resolve().parents[1] / "integration"


def _marks_integration(module: Path) -> bool:
    for node in ast.parse(module.read_text()).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets
        ):
            return "integration" in ast.unparse(node.value)
    return False


@pytest.mark.parametrize(
    "module", sorted(INTEGRATION.glob("test_*.py")), ids=lambda p: p.name
)
def test_every_integration_module_is_marked_integration(module: Path) -> None:
    assert _marks_integration(module)
