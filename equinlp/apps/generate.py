"""``equinlp generate``: continue a prompt and its group-swapped versions with the base model and a method."""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from equinlp.errors import EquinlpError
from equinlp.harness.cli import add_config_arguments, config_from_args
from equinlp.harness.model_options import ModelOptions
from equinlp.harness.options import option, validate
from equinlp.methods import registry
from equinlp.methods.proxies import PROXIES
from equinlp.symmetry.catalog import LEVELS, word_group_names

if TYPE_CHECKING:
    import torch

# torch, the models and the word groups are imported where a command runs, so `equinlp generate --help` is instant

Continued = tuple[list[str], list[str], bool]  # the prompt's swaps, their continuations, swap-consistent?
METHODS = tuple(registry.METHODS)  # base, the token-level methods, canonical (phrase level only)

log = logging.getLogger(__name__)

EXAMPLES = """examples:
  equinlp generate "The woman worked as" --group gender --method equitune
  equinlp generate "The Black person was known for" --group race --method equizero --do-sample --top-k 40
  equinlp generate "The gay person was described as" --group orientation --model HuggingFaceTB/SmolLM2-360M
  equinlp generate "Lakisha Washington worked as" --group names --method canonical --json   # phrase level
"""


@dataclass
class GenerateConfig:
    method: str = option("equitune", "method compared with the base model (canonical: phrase level only)", choices=METHODS)
    group: str = option("gender", f"word group: {', '.join(word_group_names())}, or a group file NAME.json")
    proxy: str = option("entropy", "equizero's proxy loss", choices=tuple(PROXIES))
    max_new_tokens: int = option(20, "tokens to generate", at_least=1)
    do_sample: bool = option(False, "sample instead of greedy decoding")
    top_k: int | None = option(None, "top-k sampling (the paper: 40)", at_least=1)
    top_p: float | None = option(None, "nucleus sampling", above=0, at_most=1)
    temperature: float | None = option(None, "sampling temperature", above=0)
    seed: int = option(0, "sampling seed; a prompt's swaps share it", at_least=0)
    num_beams: int = option(1, "beam search width (phrase level; token-level wrappers refuse beams)", at_least=1)
    level: str = option(
        "auto",
        "token: swap single tokens and combine the copies at every step (the paper's); phrase: swap whole phrases of "
        "any length and decode one branch (sequence level); auto: phrase for a group with role words (gender: pronouns "
        "keep agreement) or multi-token words, else token",
        choices=LEVELS,
    )
    json: bool = option(
        False,
        "print a JSON list, one object per method and group element: method, element, prompt, continuation, swap_consistent",
    )
    lm: ModelOptions = field(default_factory=ModelOptions)

    def __post_init__(self) -> None:
        from equinlp.symmetry.wordgroups import word_group

        validate(self)
        word_group(self.group)  # a known name or a readable group file
        unused = [flag for flag, value in (("--top-k", self.top_k), ("--top-p", self.top_p), ("--temperature", self.temperature))
                  if value is not None]  # fmt: skip
        if unused and not self.do_sample:
            raise EquinlpError(f"{', '.join(unused)} only act when sampling: add --do-sample (greedy decoding ignores them)")

    def decoding(self) -> dict:
        """``generate`` keyword arguments (greedy clears the sampling settings a model's generation config may hold)."""
        kwargs = {"max_new_tokens": self.max_new_tokens, "do_sample": self.do_sample}
        if self.num_beams > 1:
            kwargs["num_beams"] = self.num_beams
        if not self.do_sample:
            return {**kwargs, "top_k": None, "top_p": None, "temperature": None}
        chosen = {"top_k": self.top_k, "top_p": self.top_p, "temperature": self.temperature}
        return {**kwargs, **{k: v for k, v in chosen.items() if v is not None}, "seed": self.seed}


def build_method(model: torch.nn.Module, action, method: str, proxy: str):
    """The wrapped model for a method name; ``base`` is the model under the trivial group, so that it decodes
    with the same seeded sampler as the methods (each row's draw its own, equal seeds for a prompt's swaps)."""
    from equinlp.models import wrap

    return wrap(model, action, method=method, proxy=proxy)


def add_arguments(parser: argparse.ArgumentParser, chosen: str | None = None) -> None:
    """The prompts and :class:`GenerateConfig`'s flags (``generate`` has no subcommands: ``chosen`` is unused)."""
    parser.add_argument("prompts", nargs="+", help="one or more prompts, e.g. 'The woman worked as'")
    add_config_arguments(parser, GenerateConfig)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from equinlp.symmetry.phrases import PhrasePermutation
    from equinlp.symmetry.wordgroups import word_group

    config = config_from_args(GenerateConfig, args)
    if any(not prompt.strip() for prompt in args.prompts):
        raise EquinlpError("a prompt is empty; give text to continue, e.g. 'The woman worked as'")
    entry = registry.method(config.method)
    if not entry.token_level and config.level == "token":
        raise EquinlpError(f"{entry.name} decodes one branch at the sequence level: use --level phrase (or auto)")
    started = time.perf_counter()
    group = word_group(config.group)  # its words checked against the tokenizer before the model loads
    tokenizer = config.lm.load_tokenizer()
    action = group.action_at(config.level if entry.token_level else "phrase", tokenizer)
    phrase = isinstance(action, PhrasePermutation)
    for prompt in args.prompts if phrase else ():
        note = action.final_reading(prompt)  # a last pronoun whose role no word shows: how it was read
        if note:
            log.warning("note: %s", note)
    model, tokenizer = config.lm.load(tokenizer=tokenizer)
    continue_orbit = _phrase_orbit if phrase else _token_orbit
    methods = list(dict.fromkeys(["base", entry.name]))  # the base model first, then the method (once)
    if config.json:  # what the text shows: every method, every prompt's swaps
        rows = []
        for index, prompt in enumerate(args.prompts):
            extra = {"input": index} if len(args.prompts) > 1 else {}
            for method in methods:
                orbit, outs, consistent = continue_orbit(model, tokenizer, action, prompt, method, config)
                for g, (p, o) in enumerate(zip(orbit, outs, strict=True)):
                    rows.append(
                        {**extra, "method": method, "element": g, "prompt": p, "continuation": o, "swap_consistent": consistent}
                    )
        print(json.dumps(rows, ensure_ascii=False, indent=1))
        return 0
    level = "phrase level, one branch decoded" if phrase else f"token level, {len(action.moved)} tokens moved"
    print(f"model {config.lm.model} · group {group.name} (order {action.group.order}, {level})")
    print(f"decoding: {f'sampling, seed {config.seed}' if config.do_sample else 'greedy'}, {config.max_new_tokens} new tokens\n")
    for prompt in args.prompts:
        for method in methods:
            orbit, outs, consistent = continue_orbit(model, tokenizer, action, prompt, method, config)
            if len(set(orbit)) < len(orbit):
                print(f"note: some group elements leave {prompt!r} unchanged (no swap word?)")
            print(f"[{method}] {'swap-consistent' if consistent else 'NOT swap-consistent'}")
            for p, o in zip(orbit, outs, strict=True):
                print(f"  {p!s:<30} |{o}")
            print()
    print(f"done in {time.perf_counter() - started:.1f} s")
    return 0


def _token_orbit(model, tokenizer, action, prompt: str, method: str, config: GenerateConfig) -> Continued:
    """The prompt's swaps, their continuations, and whether continuation g is g·continuation 0 (token level: all
    |G| rows in one call, compared as token ids)."""
    import torch

    from equinlp.models.text import decode_text, encode_prompts

    if config.num_beams > 1:
        raise EquinlpError("token-level wrappers refuse beam search: use --level phrase for --num-beams")
    ids = encode_prompts(tokenizer, [prompt], model.device)["input_ids"]  # the tokenizer's defaults (<bos>)
    orbit = torch.cat([action.ids.act(ids, g) for g in range(action.group.order)])  # [G, T]
    with torch.no_grad():
        out = build_method(model, action, method, config.proxy).generate(
            input_ids=orbit, attention_mask=torch.ones_like(orbit), **config.decoding()
        )
    continuation = out[:, orbit.shape[1] :]
    consistent = all(torch.equal(continuation[g], action.ids.act(continuation[0], g)) for g in range(action.group.order))
    texts = [decode_text(tokenizer, row) for row in continuation]
    return [decode_text(tokenizer, row) for row in orbit], texts, consistent


def _phrase_orbit(model, tokenizer, action, prompt: str, method: str, config: GenerateConfig) -> Continued:
    """The same at the sequence level, compared as text (base: each swap decoded by the plain model)."""
    from equinlp.models.sequence import SEQUENCE_METHODS, SequenceLevel, decode_texts

    orbit = action.orbit(prompt)
    decoding = {k: v for k, v in config.decoding().items() if k != "seed"}
    seeds = [config.seed] * len(orbit)
    entry = registry.method(method)
    if entry.trivial:
        outs = decode_texts(model, tokenizer, orbit, seeds, decoding)
    elif entry.sequence_weights is not None:
        outs = SequenceLevel(model, tokenizer, action, method, config.proxy).generate(orbit, seed=seeds, **decoding)
    else:
        raise EquinlpError(f"{method} is token level; at the phrase level choose from {', '.join(SEQUENCE_METHODS)}")
    return orbit, outs, all(outs[g] == action.act(outs[0], g) for g in range(action.group.order))
