"""The README's Python example runs as written (on the embedded model)."""

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_readme_example_runs(embedded_cache):
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert blocks, "README has no python example"
    exec(compile(blocks[0], "README.md", "exec"), {})
