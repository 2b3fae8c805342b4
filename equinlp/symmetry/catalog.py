"""The word groups by name: the JSON files in ``data/groups`` (shipped as ``equinlp.resources``), and the levels a
group can act at, and the image groups' names. No torch, so the command lines list the choices at once."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

LEVELS = ("auto", "token", "phrase")  # auto: phrase for groups with role words or multi-token words, else token
IMAGE_GROUP_NAMES = ("rot90", "rot180", "mirror", "d4", "trivial")  # the keys of :data:`equinlp.symmetry.actions.IMAGE_GROUPS`


def groups_folder() -> Path:
    """The shipped group files' folder: a source checkout's own ``data/groups``, else the installed package's."""
    beside = Path(__file__).parents[2] / "data" / "groups"
    if beside.is_dir():  # a source checkout: its own data, even where another checkout is installed
        return beside
    return resources.files("equinlp.resources") / "groups"


def word_group_names() -> list[str]:
    """The shipped groups' names (``gender``, ``race``, ...)."""
    return sorted(p.name.removesuffix(".json") for p in groups_folder().iterdir() if p.name.endswith(".json"))


def group_file(name: str) -> Path | None:
    """The JSON file a group name reads (a built-in group's, or the file named), None if there is none: runs are
    keyed by its content, so an edited or upgraded group is a changed setting."""
    path = Path(name).expanduser() if name.endswith(".json") else Path(str(groups_folder() / f"{name}.json"))
    return path if path.is_file() else None
