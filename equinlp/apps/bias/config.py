"""``equinlp bias run``'s settings: :class:`BiasConfig` and its :class:`Decoding`, the methods and the scorers'
names. Imports no torch, pandas or transformers, so ``equinlp bias run --help`` starts at once."""

from __future__ import annotations

from dataclasses import dataclass, field

from equinlp.apps.bias.prompts import CONTEXTS, read_templates
from equinlp.errors import EquinlpError, check_name, check_names
from equinlp.harness import RunConfig, option, validate
from equinlp.harness.model_options import ModelOptions
from equinlp.methods.proxies import PROXIES
from equinlp.methods.registry import VARIANTS, variant, variants_reading
from equinlp.symmetry.catalog import LEVELS, group_file, word_group_names

METHODS = tuple(VARIANTS)  # base, canonical, equitune, relaxed-equitune, ..., equizero-sentiment (the registry's table)
SCORER_NAMES = ("vader", "textblob")  # the offline scorers (:data:`equinlp.apps.bias.scoring.SCORERS`)


def check_scorer(name: str) -> str:
    """``name`` if it is a scorer's: vader, textblob or regard:MODEL."""
    return name if name.startswith("regard:") else check_name("scorer", name, SCORER_NAMES, hint="or regard:MODEL")


@dataclass
class Decoding:
    """The paper's decoding by default: top-k 40 sampling, 15 new tokens, stop at a newline."""

    max_new_tokens: int = option(15, "tokens per continuation (the paper: 15)", at_least=1, flags=("--new-tokens",))
    top_k: int = option(40, "top-k sampling (the paper: 40)", at_least=1)
    do_sample: bool = option(True, "sample with --top-k (--no-do-sample: greedy decoding)")
    batch_size: int = option(32, "prompts per generate call; a setting, since batches are computed whole", at_least=1)
    proxy: str = option(
        "entropy",
        "equizero's per-step proxy loss",
        choices=tuple(PROXIES),
        used_by={"method": variants_reading("proxy")},
    )
    lambda_net: str | None = option(
        None,
        "for lambda / relaxed-lambda: a folder written by EquiModel.save_pretrained of a λ-equitune model (e.g. "
        "fine-tuned); without it the λ-net is at initialisation (uniform weights: the same samples as equitune)",
        used_by={"method": variants_reading("weight_net_hidden")},  # the variants with a λ-net
        reads=True,
    )

    def __post_init__(self) -> None:
        validate(self)

    def generate_kwargs(self) -> dict:
        """``generate`` keyword arguments (``top_k`` only when sampling)."""
        kwargs = {"max_new_tokens": self.max_new_tokens, "do_sample": self.do_sample}
        return {**kwargs, "top_k": self.top_k} if self.do_sample else kwargs


@dataclass
class BiasConfig(RunConfig):
    axes: tuple[str, ...] = option(
        ("gender", "race", "orientation"),
        f"demographic axes: built-in word groups ({', '.join(word_group_names())}), or group files NAME.json",
        plan=True,
        flags=("--axis",),
        cell_key="axis",
        reads=group_file,
    )
    methods: tuple[str, ...] = option(("base", "equitune", "equizero-sentiment"), "methods", choices=METHODS, plan=True)
    contexts: tuple[str, ...] | None = option(
        None, "prompt contexts (default: all: respect and occupation, or every context of --templates)"
    )
    samples: int = option(100, "samples per subject and context (100 = 20 seeds × 5 templates)", at_least=1)
    templates: str | None = option(None, "a file of templates: one per line, or context<TAB>template", reads=True)
    first_seed: int = option(0, "seeds are first-seed, first-seed + 1, ...", at_least=0)
    proxy_scorer: str = option(
        "vader",
        f"what equizero-sentiment maximises: {', '.join(SCORER_NAMES)} or regard:MODEL",
        used_by={"method": ("equizero-sentiment",)},
    )
    regard_model: str | None = option(
        None, "also label each sample by this regard classifier (sasha/regardv3, or a folder)", reads=True
    )
    level: str = option(
        "auto",
        "token: swap single tokens, methods combine the copies at every step (the paper's); phrase: swap whole phrases "
        "and decode one branch per sample (sequence level; names, multi-token terms, pronouns by role); auto: phrase for a group "
        "with role words (gender) or multi-token words, else token (relaxed methods: token)",
        choices=LEVELS,
    )
    lm: ModelOptions = field(default_factory=ModelOptions)
    decoding: Decoding = field(default_factory=Decoding)
    out: str = option("results/bias", "output folder: one JSON per finished run in OUT/runs, continued on rerun", keyed=False)

    def __post_init__(self) -> None:
        from equinlp.symmetry.wordgroups import word_group  # torch: only when a config is made, not for --help

        validate(self)
        for axis in self.axes:
            word_group(axis)  # a known name or a readable group file
        check_scorer(self.proxy_scorer)
        sequence_only = [m for m in self.methods if not variant(m).entry.token_level]
        if self.level == "token" and sequence_only:
            raise EquinlpError(f"{sequence_only[0]} decodes one branch at the sequence level: use --level phrase (or auto)")
        if self.contexts is not None:
            check_names("context", self.contexts, self.context_templates())

    def context_templates(self) -> dict[str, tuple[str, ...]]:
        """``{context: templates}`` to draw prompts from (the file's, or the paper's), before ``contexts`` picks."""
        return read_templates(self.templates) if self.templates else CONTEXTS
