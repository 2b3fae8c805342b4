"""Write ``docs/layout.md``: the package's folders and modules, each with the first sentence of its docstring.

The page is drawn from the code, so it cannot fall behind a file move; ``make docs`` runs this before the strict
build (the page is git-ignored, like the results pages). The layering it shows is enforced by ``tests/test_layers.py``.

    python -m docs.gen_layout            # from the repository root
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE, OUT = ROOT / "equinlp", ROOT / "docs" / "layout.md"

# the layers from the bottom up: a module imports its own layer or those below it (tests/test_layers.py)
LAYERS = [
    ("errors.py, files.py", "one-line errors and atomic file writes, under everything"),
    ("symmetry/", "groups and how they act"),
    ("methods/", "the one formula and its weights"),
    ("models/", "the wrappers of HF models"),
    ("testing/", "checks and tiny models for users' tests"),
    ("harness/", "one harness for every application"),
    ("apps/", "the applications; none imports another"),
    ("cli.py", "the `equinlp` command"),
]

INTRO = """# Layout

Generated from the package by `python -m docs.gen_layout`: every folder and module with the first sentence of
its docstring. The layers, from the bottom up; a module imports only its own layer and those below it, no application
imports another, and there is no import cycle (`tests/test_layers.py` checks all three):

"""


def summary(path: Path) -> str:
    """The first sentence of a module's docstring (its first paragraph, up to the first full stop)."""
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    paragraph = " ".join(doc.strip().split("\n\n")[0].split())
    return re.split(r"(?<!\bal)\.\s+(?=[A-Z(])", paragraph)[0].rstrip(".") + "." if paragraph else ""


def tree(folder: Path, depth: int = 0) -> list[str]:
    """``folder``'s modules, then its subpackages (each with its ``__init__`` summary), indented by depth."""
    lines, pad = [], "    " * depth
    for path in sorted(folder.glob("*.py")):
        if path.name != "__init__.py":
            lines.append(f"{pad}- `{path.name}`: {summary(path)}")
    for sub in sorted(p for p in folder.iterdir() if (p / "__init__.py").is_file()):
        lines.append(f"{pad}- **`{sub.name}/`**: {summary(sub / '__init__.py')}")
        lines += tree(sub, depth + 1)
    return lines


def page() -> str:
    layers = "\n".join(f"{i}. `{name}`: {what}" for i, (name, what) in enumerate(LAYERS, 1))
    return INTRO + layers + "\n\n## `equinlp/`\n\n" + "\n".join(tree(PACKAGE)) + "\n"


def main() -> None:
    OUT.write_text(page(), encoding="utf-8")


if __name__ == "__main__":
    main()
