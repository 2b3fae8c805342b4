"""The command line starts at once: which modules `import equinlp` and `equinlp ... --help` load (not how long)."""

import subprocess
import sys

import pytest

# libraries a first look must not pay for: torch and transformers (seconds each), the reporting and application stacks
HEAVY = ("torch", "transformers", "pandas", "scipy", "matplotlib", "datasets", "evaluate", "sklearn", "gymnasium", "peft")
REPORTING = ("pandas", "scipy", "matplotlib", "datasets", "evaluate", "sklearn", "gymnasium", "peft", "lm_eval")


def loaded_after(code: str) -> list[str]:
    """The top-level packages of HEAVY + REPORTING in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    probe = f"import sys\n{code}\nprint(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY + REPORTING)!r}))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return eval(done.stdout.strip().splitlines()[-1])


def help_of(*words: str) -> str:
    return f"from equinlp.cli import main\ntry:\n    main({list(words) + ['--help']!r})\nexcept SystemExit:\n    pass"


def test_import_equinlp_loads_nothing_heavy():
    assert loaded_after("import equinlp") == []


@pytest.mark.slow
def test_the_wrappers_cost_torch_and_transformers_only():
    """Every public name resolved loads what an HF model class loads (transformers' modeling brings scipy), no more."""
    baseline = loaded_after("import torch\nfrom transformers import PreTrainedModel")
    code = "import equinlp as eq\nfor name in eq.__all__:\n    getattr(eq, name)"
    assert [m for m in loaded_after(code) if m not in baseline] == []


@pytest.mark.parametrize("command", [(), ("bias",), ("scan",), ("rl",), ("vision",)])
def test_help_loads_neither_torch_nor_an_application(command):
    assert loaded_after(help_of(*command)) == []


def test_generate_help_loads_nothing_heavy():
    """The flags' choices (methods, proxies, groups, levels) come from modules that do not import torch."""
    assert loaded_after(help_of("generate")) == []


@pytest.mark.parametrize(
    "command",
    [("bias", "run"), ("scan", "run"), ("rl", "run"), ("vision", "run"), ("vision", "clip")]
    + [("bias", "report"), ("scan", "report"), ("scan", "export"), ("scan", "coverage"), ("vision", "report")],
)
def test_app_command_help_loads_nothing_heavy(command):
    """A run's flags come from its config module (``apps/APP/config.py``); the task is imported only when it runs."""
    assert loaded_after(help_of(*command)) == []


@pytest.mark.slow
def test_public_names_resolve_and_unknown_ones_fail_clearly():
    code = "import equinlp as eq\nassert set(eq.__all__) <= set(dir(eq))\nprint(eq.equitune.__module__)\neq.nope"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "equinlp.models.paper_methods"
    assert "module 'equinlp' has no attribute 'nope'" in done.stderr


def test_the_light_name_lists_name_what_the_heavy_modules_build():
    """The config modules' choices (kept free of torch) are the keys of the tables the tasks build from them."""
    from equinlp.apps.bias import config as bias_config
    from equinlp.apps.bias.scoring import SCORERS
    from equinlp.apps.rl.config import ENV_LENGTHS
    from equinlp.apps.rl.envs import ENVS
    from equinlp.apps.scan.config import RNN_CELLS
    from equinlp.apps.scan.model import CELLS
    from equinlp.apps.vision.cnn import ARCHITECTURES
    from equinlp.apps.vision.config import ARCHS
    from equinlp.symmetry.actions import IMAGE_GROUPS
    from equinlp.symmetry.catalog import IMAGE_GROUP_NAMES

    assert tuple(SCORERS) == bias_config.SCORER_NAMES
    assert tuple(ENVS) == tuple(ENV_LENGTHS)
    assert all((spec.pretrain_steps, spec.steps) == ENV_LENGTHS[name] for name, spec in ENVS.items())
    assert tuple(CELLS) == RNN_CELLS
    assert tuple(ARCHITECTURES) == ARCHS
    assert tuple(IMAGE_GROUPS) == IMAGE_GROUP_NAMES
