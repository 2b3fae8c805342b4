"""``equinlp bias run``: the bias benchmark as a harness task, one run per (axis, method).

A run's working folder (``work/bias_axis=…_method=…/``) holds:

- ``samples-{rank}.jsonl``: one generation per line, appended batch by batch by each process. The plan of
  (prompt, seed) samples is cut into fixed batches of ``batch_size``; the processes share the batches round
  robin, and a rerun skips batches already written. Each batch is computed whole and seeded per sample, so
  one process, two processes and a resumed run give the same samples bit for bit;
- ``scored.csv``: every sample with its scores (masked and plain sentiment, the plain score of the text
  swapped to each other subject, the base model's perplexity, agreement errors and leaks), reused by a rerun
  only while ``scored.json`` says it was made from exactly these samples by this scoring (``SCORING``) and
  still holds the same bytes.

The run's envelope (``OUT/runs/``) holds label shares, gaps and floors with bootstrap intervals
(:mod:`equinlp.apps.bias.analysis`); ``equinlp bias report`` reads them back.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from equinlp.apps.bias.agreement import agreement_errors, leaks
from equinlp.apps.bias.config import METHODS, BiasConfig, Decoding  # noqa: F401 (METHODS re-exported)
from equinlp.apps.bias.fluency import perplexities
from equinlp.apps.bias.generate import MethodRun
from equinlp.apps.bias.prompts import Prompt, prompts
from equinlp.apps.bias.scoring import SCORERS, RegardScorer, masked_texts, scorer
from equinlp.errors import EquinlpError
from equinlp.files import read_text_file, write_text_atomic
from equinlp.harness import distributed
from equinlp.harness.progress import progress
from equinlp.methods.registry import variant
from equinlp.models.text import continuation_ids, decode_text, prompt_ids
from equinlp.symmetry.phrases import PhrasePermutation
from equinlp.symmetry.vocab import general_token_ids
from equinlp.symmetry.wordgroups import WordGroup, group_file, read_word_group, word_group

log = logging.getLogger(__name__)

KEY = ["subject", "context", "template", "seed"]
SCORING = 2  # the version of the scored columns: 2 added agreement errors, leaks and perplexity with <bos>


def level_for(config: BiasConfig, method: str) -> str:
    """The level a method runs at: ``auto`` is ``token`` for the relaxed methods (they combine copies per token)."""
    return "token" if config.level == "auto" and variant(method).relaxed else config.level


def plan(config: BiasConfig, group: WordGroup) -> list[tuple[Prompt, int]]:
    """Every (prompt, seed) of an axis's group: context, template, seed, then subject innermost, so that a sample's
    swaps (the other subjects, same template and seed) sit side by side in a batch, where a sequence-level method
    decodes their one shared branch once."""
    contexts = config.context_templates()
    by_key = {}
    for prompt in prompts(group, contexts, config.contexts):
        seeds = max(1, config.samples // len(contexts[prompt.context]))
        for s in range(seeds):
            by_key.setdefault((prompt.context, prompt.template, s), []).append((prompt, config.first_seed + s))
    return [item for items in by_key.values() for item in items]


def _key(row: dict) -> tuple:
    return tuple(row[k] for k in KEY)


def read_samples(path: Path, repair: bool = False) -> list[dict]:
    """The rows of a samples file. A last line cut short (a hard kill mid-write) is left out, and with ``repair``
    cut off the file (only its own process repairs a file); any other unreadable line is an error naming it."""
    if not path.exists():
        return []
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        complete = data[: data.rfind(b"\n") + 1]
        if repair:
            cut = len(data) - len(complete)
            log.warning("%s: removed a last line cut short (%d bytes); its batch is generated again", path, cut)
            path.write_bytes(complete)
        data = complete
    rows = []
    for number, line in enumerate(data.decode().splitlines(), 1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise EquinlpError(f"{path}:{number} is not a JSON line ({error}); delete the file to generate it again") from None
    return rows


def read_cell_samples(work: Path, planned: list[tuple[Prompt, int]]) -> pd.DataFrame:
    """Every process's samples of a run, one row per ``planned`` sample, in plan order."""
    rows = {_key(row): row for path in sorted(work.glob("samples-*.jsonl")) for row in read_samples(path)}
    order = [(p.subject, p.context, p.template, s) for p, s in planned]
    return pd.DataFrame([rows[key] for key in order if key in rows])


GROUP_FILE = "group.json"  # in a run's working folder: the word group the run was made with


def keep_group(work: Path, axis: str) -> None:
    """Copy the axis's group file into the run's working folder (once), so reports map and mask the run's texts
    with the group it was made with, even after the group file changes."""
    if not (work / GROUP_FILE).exists():
        write_text_atomic(work / GROUP_FILE, read_text_file(group_file(axis), "group file"))


def run_group(work: Path, axis: str) -> WordGroup:
    """The word group a run was made with: its working folder's copy, else the axis's group today."""
    kept = work / GROUP_FILE
    return read_word_group(kept) if kept.exists() else word_group(axis)


@dataclass
class BiasCell:
    """One (axis, method) run, with what it works with built once: the word group (read once, from the run's
    own copy), the action at the method's level, the plan, the method set up for generation (the model wrapped
    once) and the scorers."""

    config: BiasConfig
    axis: str
    method: str
    model: Any
    tokenizer: Any
    work: Path
    group: WordGroup
    action: Any  # TokenPermutation | PhrasePermutation

    @classmethod
    def open(cls, config: BiasConfig, axis: str, method: str, model, tokenizer, work: Path) -> BiasCell:
        keep_group(work, axis)
        group = run_group(work, axis)
        return cls(config, axis, method, model, tokenizer, work, group, group.action_at(level_for(config, method), tokenizer))

    @cached_property
    def plan(self) -> list[tuple[Prompt, int]]:
        return plan(self.config, self.group)

    @cached_property
    def generator(self) -> MethodRun:
        chosen = variant(self.method)
        general = general_token_ids(self.tokenizer, self.group.general_words) if chosen.relaxed else []
        judge = self.judge(self.config.proxy_scorer) if chosen.scored else None
        return MethodRun.build(self.method, self.model, self.tokenizer, self.action, self.config.decoding, general, judge)

    def judge(self, name: str):
        """The scorer ``name``, built once per cell."""
        judges = self.__dict__.setdefault("_judges", {})
        if name not in judges:
            judges[name] = scorer(name)
        return judges[name]

    def generate(self) -> None:
        """This process's share of the batches not written yet, appended to its samples file."""
        work = self.work
        done = {_key(row) for path in sorted(work.glob("samples-*.jsonl")) for row in read_samples(path)}
        items, size = self.plan, self.config.decoding.batch_size
        batches = [items[i : i + size] for i in range(0, len(items), size)]
        todo = [b for b in batches if not all((p.subject, p.context, p.template, s) in done for p, s in b)]
        mine = distributed.my_share(todo)
        path = work / f"samples-{distributed.rank()}.jsonl"
        read_samples(path, repair=True)  # a torn last line is cut off before appending
        distributed.barrier()  # every process has read what is done before any writes
        if not mine:
            return
        write = self._continue_phrases if isinstance(self.action, PhrasePermutation) else self._continue_tokens
        with path.open("a") as sink:
            for batch in progress(mine, desc=f"{self.axis} {self.method}", unit="batch"):
                continuations, ids, ties = write([p.text for p, _ in batch], [s for _, s in batch])
                for (prompt, seed), text, row_ids, tie in zip(batch, continuations, ids, ties, strict=True):
                    row = {**asdict(prompt), "seed": seed, "prompt": prompt.text, "continuation": text, "ids": row_ids}
                    sink.write(json.dumps({"axis": self.axis, "method": self.method, **row, "unresolved_tie": tie}) + "\n")
                sink.flush()

    def _continue_tokens(self, texts: list[str], seeds: list[int]) -> tuple[list, list, list]:
        """Token level: ``(texts, ids, ties)``."""
        ids, ties = self.generator.continue_tokens(texts, seeds)
        return [decode_text(self.tokenizer, row) for row in ids], ids, ties

    def _continue_phrases(self, texts: list[str], seeds: list[int]) -> tuple[list, list, list]:
        """Phrase level: ``(texts, ids, ties)`` (ids for perplexity)."""
        continuations, ties = self.generator.continue_phrases(texts, seeds)
        return continuations, [continuation_ids(self.tokenizer, c) for c in continuations], ties

    def score(self) -> pd.DataFrame:
        """Score every sample into ``scored.csv``, or read it back if it scored exactly these samples."""
        work, config, group, action, tokenizer = self.work, self.config, self.group, self.action, self.tokenizer
        frame = read_cell_samples(work, self.plan)
        digest = samples_digest(frame)
        csv_path, record_path = work / "scored.csv", work / "scored.json"
        if csv_path.exists() and record_path.exists():
            record = json.loads(record_path.read_text())
            if record == _record(digest, csv_path.read_bytes()):
                scored = pd.read_csv(csv_path, keep_default_na=False, na_values=[""])  # "" is missing; "NA" or "null" is text
                scored[["prompt", "continuation"]] = scored[["prompt", "continuation"]].fillna("")  # an empty continuation
                return scored
            log.warning("%s does not match the samples (changed or damaged): scoring again", csv_path)
        prompts = [prompt_ids(tokenizer, p) for p in frame["prompt"]]  # as generated: with the tokenizer's <bos>
        full = [p + list(c) for p, c in zip(prompts, frame["ids"], strict=True)]
        if isinstance(action, PhrasePermutation):  # the text as written, phrases masked in the text
            plain = [p + c for p, c in zip(frame["prompt"], frame["continuation"], strict=True)]
            masked = [action.mask(p) + action.mask(c) for p, c in zip(frame["prompt"], frame["continuation"], strict=True)]
        else:
            plain, masked = [decode_text(tokenizer, ids) for ids in full], masked_texts(tokenizer, full, action)
        for column, flags in (
            ("agreement_error", agreement_errors(group, frame["subject"], frame["continuation"])),
            ("leak", leaks(group, frame["subject"], masked)),
        ):
            if flags is not None:
                frame[column] = flags
        for name in SCORERS:
            judge = self.judge(name)
            frame[f"{name}_masked"] = judge.scores(masked)
            frame[f"{name}_plain"] = judge.scores(plain)
        if config.regard_model:  # labels, not scores: the classifier's most likely class
            judge = RegardScorer(config.regard_model, config.decoding.batch_size)
            frame["regard_masked"], frame["regard_plain"] = judge.labels(masked), judge.labels(plain)
        # the scorer's floor: the same text with its subject swapped to each other subject, scored plain
        elements = group.subject_elements(action, tokenizer)
        for target in group.subjects:
            swapped = []
            for subject, ids, text in zip(frame["subject"], full, plain, strict=True):
                g = elements[(subject, target)]
                if isinstance(action, PhrasePermutation):
                    swapped.append(action.act(text, g))
                else:
                    swapped.append(decode_text(tokenizer, action.ids.act(torch.tensor(ids), g).tolist()))
            frame[f"vader_plain_as_{target}"] = self.judge("vader").scores(swapped)
        frame["perplexity"] = perplexities(self.model, prompts, list(frame["ids"]), config.decoding.batch_size)
        write_scored(work, frame, digest)
        return frame


def generate_cell(config: BiasConfig, axis: str, method: str, model, tokenizer, work: Path) -> None:
    """This process's share of the batches of (axis, method) not written yet (:meth:`BiasCell.generate`)."""
    BiasCell.open(config, axis, method, model, tokenizer, work).generate()


def score_cell(config: BiasConfig, axis: str, method: str, model, tokenizer, work: Path) -> pd.DataFrame:
    """Score every sample of (axis, method) (:meth:`BiasCell.score`)."""
    return BiasCell.open(config, axis, method, model, tokenizer, work).score()


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def samples_digest(frame: pd.DataFrame) -> str:
    """A fingerprint of the samples a scored CSV was made from (their keys and texts)."""
    rows = frame[[*KEY, "prompt", "continuation"]].sort_values(KEY).reset_index(drop=True)  # not the plan's order
    return _digest(rows.to_json(orient="records").encode())


def write_scored(work: Path, frame: pd.DataFrame, digest: str) -> None:
    """``scored.csv`` and ``scored.json`` (the samples' fingerprint and the CSV's own), each atomically."""
    text = frame.drop(columns=["ids"], errors="ignore").to_csv(index=False)
    write_text_atomic(work / "scored.csv", text)
    write_text_atomic(work / "scored.json", json.dumps(_record(digest, text.encode())))


def _record(digest: str, csv: bytes) -> dict:
    return {"samples": digest, "csv": _digest(csv), "scoring": SCORING}
