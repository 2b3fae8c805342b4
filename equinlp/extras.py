"""Which optional extra provides a module, so a command that lacks one says what to install."""

from __future__ import annotations

# top-level module -> the extra of pyproject.toml that installs it
EXTRAS = {
    "gguf": "embedded",
    "vaderSentiment": "bias",
    "textblob": "bias",
    "gymnasium": "rl",
    "sklearn": "vision",
    "PIL": "vision",
    "peft": "peft",
    "lm_eval": "lm-eval",
}


def missing_extra_message(error: ModuleNotFoundError) -> str | None:
    """``"this command needs gymnasium: pip install 'equinlp[rl]'"`` for a module of an extra, else None."""
    module = (error.name or "").split(".")[0]
    extra = EXTRAS.get(module)
    return f"this command needs {module}: pip install 'equinlp[{extra}]'" if extra else None
