"""``equinlp generate``: continue a prompt and its group-swapped versions with the base model and a method."""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass, field

import torch

from equinlp.aggregate import PROXIES
from equinlp.embedded import ModelOptions
from equinlp.harness.cli import add_config_arguments, config_from_args
from equinlp.harness.options import option, validate
from equinlp.methods import BASE, config_for, method_names
from equinlp.wordgroups import word_group, word_group_names

log = logging.getLogger(__name__)
METHODS = method_names(with_base=True)

EXAMPLES = """examples:
  equinlp generate "The woman worked as" --group gender --method equitune
  equinlp generate "The Black person was known for" --group race --method equizero --do-sample --top-k 40
  equinlp generate "The gay person was described as" --group orientation --model HuggingFaceTB/SmolLM2-360M
"""


@dataclass
class GenerateConfig:
    method: str = option("equitune", "method compared with the base model", choices=METHODS)
    group: str = option("gender", f"word group: {', '.join(word_group_names())}, or a group file NAME.json")
    proxy: str = option("entropy", "equizero's proxy loss", choices=tuple(PROXIES))
    max_new_tokens: int = option(20, "tokens to generate", at_least=1)
    do_sample: bool = option(False, "sample instead of greedy decoding")
    top_k: int | None = option(None, "top-k sampling (the paper: 40)", at_least=1)
    top_p: float | None = option(None, "nucleus sampling", above=0, at_most=1)
    temperature: float | None = option(None, "sampling temperature", above=0)
    seed: int = option(0, "sampling seed; a prompt's swaps share it", at_least=0)
    lm: ModelOptions = field(default_factory=ModelOptions)

    def __post_init__(self) -> None:
        validate(self)
        word_group(self.group)  # a known name or a readable group file

    def decoding(self) -> dict:
        """``generate`` keyword arguments (greedy clears the sampling settings a model's generation config may hold)."""
        kwargs = {"max_new_tokens": self.max_new_tokens, "do_sample": self.do_sample}
        if not self.do_sample:
            return {**kwargs, "top_k": None, "top_p": None, "temperature": None}
        chosen = {"top_k": self.top_k, "top_p": self.top_p, "temperature": self.temperature}
        return {**kwargs, **{k: v for k, v in chosen.items() if v is not None}, "seed": self.seed}


def build_method(model: torch.nn.Module, action, method: str, proxy: str):
    """The wrapped model for a method name; ``base`` is the model under the trivial group, so that it decodes
    with the same seeded sampler as the methods (each row's draw its own, equal seeds for a prompt's swaps)."""
    from equinlp.actions import TokenPermutation
    from equinlp.models import wrap_method

    if method == BASE:
        return wrap_method(model, TokenPermutation.identity(action.vocab_size), config_for("equitune"))
    return wrap_method(model, action, config_for(method, proxy=proxy))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prompts", nargs="+", help="one or more prompts, e.g. 'The woman worked as'")
    add_config_arguments(parser, GenerateConfig)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    config = config_from_args(GenerateConfig, args)
    if any(not prompt.strip() for prompt in args.prompts):
        from equinlp.errors import EquinlpError

        raise EquinlpError("a prompt is empty; give text to continue, e.g. 'The woman worked as'")
    started = time.perf_counter()
    model, tokenizer = config.lm.load()
    group = word_group(config.group)
    action = group.action(tokenizer)
    print(f"model {config.lm.model} · group {group.name} (order {action.group.order}, {len(action.moved)} tokens moved)")
    decoding = f"sampling, seed {config.seed}" if config.do_sample else "greedy"
    print(f"decoding: {decoding}, {config.max_new_tokens} new tokens\n")
    methods = [BASE] + ([config.method] if config.method != BASE else [])
    for prompt in args.prompts:
        ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"].to(model.device)
        orbit = torch.cat([action.ids.act(ids, g) for g in range(action.group.order)])  # [G, T]: prompt and its swaps
        fixed = [g for g in range(1, action.group.order) if torch.equal(orbit[g], orbit[0])]
        if fixed:
            print(f"note: the group leaves this prompt unchanged under {len(fixed)} of its elements (no swap word?)")
        for method in methods:
            wrapped = build_method(model, action, method, config.proxy)
            with torch.no_grad():
                out = wrapped.generate(input_ids=orbit, attention_mask=torch.ones_like(orbit), **config.decoding())
            continuation = out[:, orbit.shape[1] :]
            consistent = all(torch.equal(continuation[g], action.ids.act(continuation[0], g)) for g in range(action.group.order))
            print(f"[{method}] {'swap-consistent' if consistent else 'NOT swap-consistent'}")
            for g in range(action.group.order):
                text = tokenizer.decode(continuation[g], skip_special_tokens=True)
                print(f"  {tokenizer.decode(orbit[g])!s:<30} |{text}")
            print()
    print(f"done in {time.perf_counter() - started:.1f} s")
    return 0
