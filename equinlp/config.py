"""EquiConfig: what a wrapper adds to a base model, as a JSON-serialisable dataclass."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

METHODS = ("equitune", "equizero", "lambda")
SAMPLERS = ("equivariant", "hf")
CONFIG_NAME = "equinlp_config.json"


@dataclass
class EquiConfig:
    method: str = field(default="equitune", metadata={"help": "equitune | equizero | lambda"})
    proxy: str | None = field(default=None, metadata={"help": "equizero proxy loss name (entropy, max_logit, max_prob)"})
    straight_through: bool = field(default=True, metadata={"help": "equizero: mean's gradient when training"})
    weight_net_hidden: int = field(default=100, metadata={"help": "λ-net hidden width"})
    weight_net_dropout: float = field(default=0.5, metadata={"help": "λ-net dropout (training only)"})
    sampler: str = field(
        default="equivariant",
        metadata={"help": "equivariant: seeded sampling picks swapped tokens for swapped prompts; hf: torch.multinomial"},
    )
    family: str = field(default="", metadata={"help": "model family the wrapper was built for"})
    base_model_name_or_path: str = field(default="", metadata={"help": "where the base model came from"})
    base_fine_tuned: bool = field(default=False, metadata={"help": "whether the saved folder holds the base weights"})
    group_description: list[str] = field(default_factory=list, metadata={"help": "the swap cycles, for reading"})
    relaxed_tokens: list[int] = field(
        default_factory=list, metadata={"help": "general-word token ids taken from the identity copy (relaxed variant)"}
    )

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose from {METHODS}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}; choose from {SAMPLERS}")

    def save(self, directory: str | Path) -> None:
        (Path(directory) / CONFIG_NAME).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, directory: str | Path) -> EquiConfig:
        path = Path(directory) / CONFIG_NAME
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: not a folder written by save_pretrained")
        return cls(**json.loads(path.read_text()))
