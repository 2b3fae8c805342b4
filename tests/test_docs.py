"""The README is a front door and the docs cannot drift from the committed results."""

import re
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_readme_is_short_and_names_only_files_of_the_repository():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 300
    assert "../" not in readme
    for link in re.findall(r"\]\(([^)#]+\.md)\)", readme):
        assert (ROOT / link).is_file(), link


def test_every_job_has_its_command_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    for command in ("equinlp generate", "equinlp bias run", "equinlp scan run", "equinlp vision run", "equinlp rl run"):
        assert command in readme, command


def test_results_pages_are_the_report_commands_tables(tmp_path, monkeypatch):
    """docs/gen_results.py prints the task's own tables for a committed folder (the figure goes to OUT)."""
    from docs import gen_results

    monkeypatch.setattr(gen_results, "OUT", tmp_path)
    page = gen_results.page(ROOT / "reports" / "scan_verb4")
    assert page.startswith("# scan_verb4") and "`equinlp scan report reports/scan_verb4`" in page
    assert "exact-match accuracy (%)" in page and (tmp_path / "scan_verb4.png").is_file()


def test_the_layout_page_lists_every_module_with_its_summary():
    """docs/gen_layout.py draws the layout from the package: a new module appears with its docstring's first sentence."""
    from docs import gen_layout

    page = gen_layout.page()
    for path in (ROOT / "equinlp").rglob("*.py"):
        if not (path.parent / "__init__.py").is_file():  # an evaluate script's folder, loaded by path
            continue
        name = path.parent.name + "/" if path.name == "__init__.py" else path.name
        assert f"`{name}`" in page, name
    assert "- `core.py`: The one formula, written once." in page
