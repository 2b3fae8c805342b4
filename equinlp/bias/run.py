"""``equinlp bias run``: generate, score and summarise, per axis and method, resumably.

Files under ``out``:

- ``samples/{axis}_{method}.jsonl``: one generation per line, appended batch by batch; a rerun skips the
  samples already there, so an interrupt loses at most one batch;
- ``scored/{axis}_{method}.csv``: every sample with its scores (written atomically once generated, and
  reused by a rerun while it holds exactly the same samples):
  masked and plain sentiment, the plain score of the same text swapped to every other subject (the
  scorer's floor), and the base model's perplexity of the continuation;
- ``results.json``: label shares, gaps and floors with bootstrap intervals (see :mod:`equinlp.bias.analysis`).
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from equinlp.bias.analysis import summarise
from equinlp.bias.fluency import perplexities
from equinlp.bias.generate import METHODS, Decoding, generate
from equinlp.bias.prompts import AXES, Prompt, prompts, read_templates
from equinlp.bias.scoring import SCORERS, RegardScorer, masked_texts, scorer
from equinlp.files import write_text_atomic
from equinlp.vocab import general_token_ids
from equinlp.wordgroups import word_group

# the relaxed variant's general words in the paper's code, for every axis; a group's own are added
PAPER_GENERAL_WORDS = ("he", "she", "his", "her", "him")


@dataclass
class BiasConfig:
    axes: tuple[str, ...] = ("gender", "race", "orientation")
    methods: tuple[str, ...] = ("base", "equitune", "equizero-sentiment")
    contexts: tuple[str, ...] = ("respect", "occupation")
    samples: int = 100  # per subject and context; seeds = samples / templates per context
    model: str = "smollm2"
    proxy_scorer: str = "vader"  # equizero-sentiment's choice of copy: vader, textblob or regard:MODEL
    regard_model: str | None = None  # also label every sample with this regard classifier (hub id or folder)
    templates_file: str | None = None
    first_seed: int = 0
    out: str = "results/bias"
    decoding: Decoding = field(default_factory=Decoding)

    def __post_init__(self) -> None:
        for name, given, known in (
            ("axes", self.axes, AXES),
            ("methods", self.methods, METHODS),
            ("scorer", [] if self.proxy_scorer.startswith("regard:") else [self.proxy_scorer], SCORERS),
        ):
            unknown = set(given) - set(known)
            if unknown:
                extra = " or regard:MODEL" if name == "scorer" else ""
                raise ValueError(f"unknown {name} {sorted(unknown)}; choose from {sorted(known)}{extra}")


def plan(config: BiasConfig, axis: str) -> list[tuple[Prompt, int]]:
    """Every (prompt, seed) of an axis, subject-major, then context, template, seed."""
    contexts = read_templates(config.templates_file) if config.templates_file else None
    chosen = None if config.templates_file else config.contexts
    items = []
    for prompt in prompts(word_group(AXES[axis]), contexts, chosen):
        templates = len((contexts or {}).get(prompt.context, ())) or 5
        seeds = max(1, config.samples // templates)
        items += [(prompt, config.first_seed + s) for s in range(seeds)]
    return items


def _key(row: dict) -> tuple:
    return row["subject"], row["context"], row["template"], row["seed"]


def read_samples(path: Path) -> list[dict]:
    """The JSONL's complete lines (a line cut short by a hard kill is dropped, and regenerated on rerun)."""
    rows = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


@contextmanager
def _report_interrupt(path: Path):
    try:
        yield
    except KeyboardInterrupt:
        print(f"\ninterrupted: the finished batches are in {path}; rerun the same command to continue")
        raise


def generate_axis(config: BiasConfig, axis: str, method: str, model, tokenizer, log=print) -> Path:
    """Append the missing generations of (axis, method) to its JSONL; returns the path."""
    group = word_group(AXES[axis])
    action = group.action(tokenizer)
    words = list(dict.fromkeys([*PAPER_GENERAL_WORDS, *group.general_words]))
    general = general_token_ids(tokenizer, words) if method.startswith("relaxed-") else []
    path = Path(config.out) / "samples" / f"{axis}_{method}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    done = {_key(row) for row in read_samples(path)}
    todo = [(p, s) for p, s in plan(config, axis) if (p.subject, p.context, p.template, s) not in done]
    if not todo:
        log(f"{axis} {method}: {len(done)} samples kept")
        return path
    proxy = scorer(config.proxy_scorer)
    size = config.decoding.batch_size
    with path.open("a") as sink, _report_interrupt(path):
        for start in tqdm(range(0, len(todo), size), desc=f"{axis} {method}", disable=None):
            chunk = todo[start : start + size]
            continuations, ties = generate(
                method,
                model,
                tokenizer,
                action,
                [p.text for p, _ in chunk],
                [s for _, s in chunk],
                config.decoding,
                general,
                proxy,
            )
            for (prompt, seed), ids, tie in zip(chunk, continuations, ties, strict=True):
                row = {**asdict(prompt), "seed": seed, "prompt": prompt.text, "continuation": tokenizer.decode(ids), "ids": ids}
                sink.write(json.dumps({"axis": axis, "method": method, **row, "unresolved_tie": tie}) + "\n")
            sink.flush()
    return path


def score_axis(config: BiasConfig, axis: str, method: str, model, tokenizer, base_model=None) -> pd.DataFrame:
    """Score every sample of (axis, method); writes ``scored/{axis}_{method}.csv`` atomically."""
    rows = read_samples(Path(config.out) / "samples" / f"{axis}_{method}.jsonl")
    frame = pd.DataFrame(rows).drop_duplicates(["subject", "context", "template", "seed"], keep="last")
    path = Path(config.out) / "scored" / f"{axis}_{method}.csv"
    kept = _scored_already(path, frame, config)
    if kept is not None:
        return kept
    group = word_group(AXES[axis])
    action = group.action(tokenizer)
    prompt_ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in frame["prompt"]]
    full = [p + list(c) for p, c in zip(prompt_ids, frame["ids"], strict=True)]
    masked = masked_texts(tokenizer, full, action)
    plain = [tokenizer.decode(ids) for ids in full]
    for name in SCORERS:
        judge = scorer(name)
        frame[f"{name}_masked"] = judge.scores(masked)
        frame[f"{name}_plain"] = judge.scores(plain)
    if config.regard_model:  # labels, not scores: the classifier's most likely class
        judge = RegardScorer(config.regard_model, config.decoding.batch_size)
        frame["regard_masked"], frame["regard_plain"] = judge.labels(masked), judge.labels(plain)
    # the scorer's floor: the same text with its subject swapped to each other subject, scored plain
    vader = scorer("vader")
    subject_ids = {s: tokenizer(f"The {s}", add_special_tokens=False)["input_ids"] for s in group.subjects}
    for target in group.subjects:
        swapped = []
        for subject, ids in zip(frame["subject"], full, strict=True):
            g = _element(action, subject_ids[subject], subject_ids[target])
            swapped.append(tokenizer.decode(action.ids.act(torch.tensor(ids), g).tolist()))
        frame[f"vader_plain_as_{target}"] = vader.scores(swapped)
    frame["perplexity"] = perplexities(base_model or model, prompt_ids, list(frame["ids"]), config.decoding.batch_size)
    write_text_atomic(path, frame.drop(columns=["ids"]).to_csv(index=False))
    return frame


def _scored_already(path: Path, samples: pd.DataFrame, config: BiasConfig) -> pd.DataFrame | None:
    """The scored CSV if it holds exactly these samples (same keys and texts) and every column asked for."""
    if not path.exists():
        return None
    scored = pd.read_csv(path, keep_default_na=False, na_values=[""])  # "" is missing; "NA" or "null" is text
    scored[["prompt", "continuation"]] = scored[["prompt", "continuation"]].fillna("")  # an empty continuation
    keys = ["subject", "context", "template", "seed", "continuation"]
    if len(scored) != len(samples) or (config.regard_model and "regard_masked" not in scored):
        return None
    ours = samples[keys].astype(str).sort_values(keys[:4]).reset_index(drop=True)
    theirs = scored[keys].astype(str).sort_values(keys[:4]).reset_index(drop=True)
    return scored if ours.equals(theirs) else None


def _element(action, source: list[int], target: list[int]) -> int:
    """The group element that maps the ``source`` subject's tokens to ``target``'s."""
    for g in range(action.group.order):
        if action.ids.act(torch.tensor(source), g).tolist() == target:
            return g
    raise ValueError(f"no group element maps {source} to {target}")


def run(config: BiasConfig, model, tokenizer, log=print) -> dict:
    """Generate, score and summarise every (axis, method); returns the results (also ``results.json``)."""
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    frames = []
    for axis in config.axes:
        for method in config.methods:
            generate_axis(config, axis, method, model, tokenizer, log)
            frames.append(score_axis(config, axis, method, model, tokenizer))
    results = {"config": {**asdict(config), "decoding": asdict(config.decoding)}, **summarise(pd.concat(frames))}
    write_text_atomic(out / "results.json", json.dumps(results, indent=2) + "\n")
    log(f"results: {out / 'results.json'}")
    return results
