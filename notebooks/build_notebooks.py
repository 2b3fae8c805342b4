"""Write the demo notebooks from their cells (so they are reviewable as code); run them with nbclient.

python notebooks/build_notebooks.py          # writes notebooks/*.ipynb without outputs
python notebooks/build_notebooks.py --run    # and executes them in place (small outputs committed)
python notebooks/build_notebooks.py --run debiased_generation.ipynb   # only the named ones
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).parent

SCAN = [
    new_markdown_cell(
        "# SCAN with equinlp\n\n"
        "SCAN (Lake & Baroni 2018) maps commands such as *jump twice after run left* to actions. Its "
        "*add-jump* split never shows `jump` in a composition during training; a plain seq2seq model "
        "then fails almost every test command. With the group that swaps `jump`↔`run` (and `I_JUMP`↔`I_RUN`), "
        "equizero answers *jump twice* by solving *run twice* and swapping back.\n\n"
        "This notebook regenerates the data, runs a tiny experiment and reports it. "
        "`equinlp scan run --quick` is the same thing at a size that shows the effect properly."
    ),
    new_markdown_cell("## 1. The data, generated from the grammar (identical to the official files as multisets)"),
    new_code_cell(
        "import os\n"
        "import warnings\n\n"
        "os.environ['TQDM_DISABLE'] = '1'  # progress bars are for terminals; keep the notebook's outputs small\n"
        "warnings.filterwarnings('ignore', message='IProgress not found')\n\n"
        "from equinlp.apps.scan.splits import export_split, scan_split  # noqa: E402 (after the settings above)\n\n"
        "paths = export_split('addprim_jump', 'scan_data/addprim_jump')\n"
        "split = scan_split('addprim_jump')\n"
        "print({part: len(examples) for part, examples in split.items()})\n"
        "print(paths['test'].read_text().splitlines()[:3])"
    ),
    new_markdown_cell(
        "## 2. A tiny run: pre-train a GRU seq2seq briefly, then evaluate base and equizero\n\n"
        "(300 pre-training steps and 500 test commands, so that the notebook runs in about a minute.)"
    ),
    new_code_cell(
        "from equinlp.harness import run_task\n"
        "from equinlp.apps.scan.task import ScanConfig, ScanTask\n\n"
        "config = ScanConfig(split='addprim_jump', cell='gru', methods=('base', 'equizero'), seeds=(0,),\n"
        "                    pretrain_steps=300, finetune_steps=30, test_limit=500, out='results/scan_notebook')\n"
        "envelopes = run_task(ScanTask(), config)  # one JSON per run in results/scan_notebook/runs"
    ),
    new_markdown_cell("## 3. The report: a table (mean and t-interval over seeds) and a plot"),
    new_code_cell(
        "from equinlp.harness import load_runs\n"
        "from equinlp.apps.scan.report import plot, table\n\n"
        "runs = load_runs('results/scan_notebook', 'scan')\n"
        "table(runs)"
    ),
    new_code_cell("from IPython.display import Image\n\nImage(filename=str(plot(runs, 'results/scan_notebook/scan.png')))"),
    new_markdown_cell(
        "The real thing, three seeds on both of the paper's splits:\n\n"
        "```bash\n"
        "equinlp scan run --split addprim_jump --cell gru --seeds 0 1 2 --out results/scan\n"
        "equinlp scan run --split template_around_right --cell gru --seeds 0 1 2 --out results/scan\n"
        "equinlp scan report results/scan\n"
        "```"
    ),
]

BIAS = [
    new_markdown_cell(
        "# Debiased generation with equinlp\n\n"
        "A language model continues *The man was known for* and *The woman was known for* differently. "
        "Wrapped with equitune over the group that swaps man↔woman (and he↔she, ...), it writes exactly "
        "swapped continuations, sample by sample, with the same seed. This notebook shows that on the "
        "embedded SmolLM2-135M-Instruct, scores the texts with the demographic word masked, and runs a "
        "small version of the benchmark (`equinlp bias run`)."
    ),
    new_markdown_cell("## 1. Wrap the model"),
    new_code_cell(
        "import os\n"
        "import warnings\n\n"
        "os.environ['TQDM_DISABLE'] = '1'  # progress bars are for terminals; keep the notebook's outputs small\n"
        "warnings.filterwarnings('ignore', message='IProgress not found')\n\n"
        "import equinlp as eq  # noqa: E402 (after the settings above)\n"
        "from equinlp.symmetry.wordgroups import word_group  # noqa: E402\n\n"
        "model, tokenizer = eq.load_model()  # the embedded SmolLM2-135M-Instruct, converted once from its GGUF\n"
        "gender = word_group('gender')\n"
        "act = gender.action(tokenizer)\n"
        "fair = eq.equitune(model, act)\n"
        "print(act)"
    ),
    new_markdown_cell(
        "## 2. Seeded top-k sampling for a prompt and its swap\n\n"
        "The same seed for both rows. The base model (the trivial group) writes unrelated continuations; "
        "equitune writes the same continuation with the words swapped."
    ),
    new_code_cell(
        "from equinlp.apps.bias.generate import Decoding, generate  # noqa: E402\n\n"
        "prompts = ['The man was known for', 'The woman was known for']\n"
        "decoding = Decoding(max_new_tokens=15, top_k=40)\n"
        "for method in ('base', 'equitune'):\n"
        "    continuations, _ = generate(method, model, tokenizer, act, prompts, seeds=[7, 7], decoding=decoding)\n"
        "    print(method)\n"
        "    for prompt, ids in zip(prompts, continuations, strict=True):\n"
        "        print(f'  {prompt} |{tokenizer.decode(ids)}')"
    ),
    new_markdown_cell(
        "## 3. Scoring with the demographic words masked\n\n"
        "Every token the group moves becomes `XYZ`, so a text and its swap score identically: any gap that "
        "remains comes from the model, not from the scorer's opinion of the words *man* and *woman*."
    ),
    new_code_cell(
        "from equinlp.apps.bias.scoring import masked_texts, scorer  # noqa: E402\n\n"
        "pairs = zip(prompts, continuations, strict=True)\n"
        "full = [tokenizer(p, add_special_tokens=False)['input_ids'] + ids for p, ids in pairs]\n"
        "masked = masked_texts(tokenizer, full, act)\n"
        "print(masked)\n"
        "print('VADER:', scorer('vader').scores(masked))"
    ),
    new_markdown_cell(
        "## 4. A small benchmark run\n\n"
        "Black↔White, the respect templates, 10 samples per subject (2 seeds × 5 templates), three methods. "
        "The README's table uses `--samples 500` on every axis."
    ),
    new_code_cell(
        "from equinlp.apps.bias.report import gaps_table, plot, shares_table  # noqa: E402\n"
        "from equinlp.apps.bias.run import BiasConfig  # noqa: E402\n"
        "from equinlp.apps.bias.task import BiasTask, tables_from  # noqa: E402\n"
        "from equinlp.harness import load_runs, run_task  # noqa: E402\n\n"
        "config = BiasConfig(axes=('race2',), methods=('base', 'equitune', 'equizero-sentiment'), contexts=('respect',),\n"
        "                    samples=10, out='results/bias_notebook')\n"
        "run_task(BiasTask(model, tokenizer), config)  # one run per method; a rerun keeps finished runs\n"
        "tables = tables_from(load_runs('results/bias_notebook', 'bias'))\n"
        "shares_table(tables)"
    ),
    new_code_cell("gaps_table(tables)"),
    new_code_cell(
        "from IPython.display import Image  # noqa: E402\n\nImage(filename=str(plot(tables, 'results/bias_notebook/bias.png')))"
    ),
    new_markdown_cell(
        "From the command line, with a progress bar and resumable:\n\n"
        "```bash\n"
        "equinlp bias run --axis gender race orientation --samples 500 --out results/bias\n"
        "equinlp bias report results/bias\n"
        "```"
    ),
]

NOTEBOOKS = {"scan.ipynb": SCAN, "debiased_generation.ipynb": BIAS}


def main(run: bool, only: list[str]) -> None:
    for name, cells in NOTEBOOKS.items():
        if only and name not in only:
            continue
        notebook = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}})
        path = HERE / name
        if run:
            from nbclient import NotebookClient

            NotebookClient(notebook, timeout=900, resources={"metadata": {"path": str(HERE)}}).execute()
        nbformat.write(notebook, path)
        print(f"wrote {path}")


if __name__ == "__main__":
    main("--run" in sys.argv, [a for a in sys.argv[1:] if a != "--run"])
