"""The README's Python examples run as written (on the embedded model)."""

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_readme_examples_run(embedded_cache):
    """Every Python block, in order, in one namespace, except the one that downloads a 7B model."""
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.S) if "meta-llama" not in b]
    assert len(blocks) >= 2, "README lost its python examples"
    namespace = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
