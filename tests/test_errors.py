"""Bad input gets a clear error naming the culprit, never a silently non-equivariant model."""

import json
from pathlib import Path

import pytest
import torch

import equinlp as eq
from equinlp.testing import tiny_causal_lm, tiny_seq2seq


@pytest.fixture
def x(tok):
    tok.padding_side = "left"
    return tok(["the man said that he was"], return_tensors="pt")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_beams": 3}, "beam search"),
        ({"penalty_alpha": 0.6, "top_k": 4}, "contrastive"),
        ({"cache_implementation": "offloaded"}, "cache"),
    ],
)
def test_decoding_that_cannot_be_equivariant_raises(model, x, kwargs, match):
    with pytest.raises(ValueError, match=match):
        model.generate(**x, max_new_tokens=3, **kwargs)


def test_special_token_that_the_group_moves_raises(model, x, tok):
    man = tok.convert_tokens_to_ids("man")
    with pytest.raises(ValueError, match=rf"eos_token_id={man} names \[{man}\] but not its image"):
        model.generate(**x, max_new_tokens=3, eos_token_id=man)


def test_banned_swap_word_raises(model, x, tok):
    she = tok.convert_tokens_to_ids("she")
    with pytest.raises(ValueError, match=rf"bad_words_ids=\[\[{she}\]\] names \[{she}\] but not its image"):
        model.generate(**x, max_new_tokens=3, bad_words_ids=[[she]])


def test_assisted_decoding_and_embeddings_raise(model, x, tok):
    with pytest.raises(ValueError, match="assisted decoding"):
        model.generate(**x, max_new_tokens=3, assistant_model=tiny_causal_lm(len(tok)))
    embeds = model.unwrap().get_input_embeddings()(x["input_ids"])
    with pytest.raises(ValueError, match="inputs_embeds"):
        model(inputs_embeds=embeds)


def test_vocabulary_mismatch_raises(tok, swap):
    small = tiny_causal_lm(int(swap.moved.max()))  # the model's vocabulary lacks a swapped token
    with pytest.raises(ValueError, match="vocabulary mismatch"):
        eq.equitune(small, swap)


def test_actions_of_different_groups_raise(tok, swap, cycle3):
    with pytest.raises(ValueError, match="same group"):
        eq.equitune(tiny_seq2seq(len(tok)), (swap, cycle3))


def test_unknown_proxy_family_and_double_wrap(tok, swap):
    with pytest.raises(ValueError, match="unknown proxy 'confidence'"):
        eq.equizero(tiny_causal_lm(len(tok)), swap, proxy="confidence")
    with pytest.raises(ValueError, match="no equinlp wrapper accepts Linear"):
        eq.equitune(torch.nn.Linear(2, 2), swap)
    wrapped = eq.equitune(tiny_causal_lm(len(tok)), swap)
    with pytest.raises(ValueError, match="already wrapped"):
        eq.equitune(wrapped, swap)


def test_cli_rejects_unknown_group_and_method(capsys):
    from equinlp.cli import main

    assert main(["generate", "hi", "--method", "equitun"]) == 2
    assert capsys.readouterr().err.startswith("equinlp: error: unknown method 'equitun'; did you mean 'equitune'?")
    assert main(["generate", "hi", "--group", "gendr"]) == 2
    assert "did you mean 'gender'?" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown group 'caste'"):
        from equinlp.symmetry.wordgroups import word_group

        word_group("caste")


def test_help_imports_no_application_and_python_m_works():
    """`equinlp --help` resolves subcommands lazily: no gymnasium, no vision stack; `python -m equinlp` is the CLI."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from equinlp.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "apps = ('gymnasium', 'equinlp.apps.rl', 'equinlp.apps.vision', 'equinlp.apps.scan', 'equinlp.apps.bias')\n"
        "print(sorted(m for m in apps if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("[]"), out
    help_text = subprocess.run([sys.executable, "-m", "equinlp", "rl", "--help"], capture_output=True, text=True, check=True)
    assert "equivariant deep Q-learning" in help_text.stdout


@pytest.mark.slow
def test_a_reader_that_stops_early_gets_no_traceback():
    """`equinlp scan report DIR | head -2`: the pipe closes before the report is written; exit 141, stderr empty."""
    import subprocess
    import sys

    folder = Path(__file__).parents[1] / "reports" / "scan_10k"
    process = subprocess.Popen(
        [sys.executable, "-m", "equinlp", "scan", "report", str(folder)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    process.stdout.close()  # long before the child has imported anything, so its first write finds no reader
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 141 and stderr == b"", stderr.decode()


def test_a_missing_extra_is_named_with_its_install_command(tmp_path):
    """Application dependencies are extras: without gymnasium, `equinlp rl run` says what to install, in one line,
    before any work (its --help, read from the config alone, still shows)."""
    import subprocess
    import sys

    for argv, code in ((["rl", "run", "--out", str(tmp_path / "rl")], 2), (["rl", "run", "--help"], 0)):
        program = f"import sys\nsys.modules['gymnasium'] = None\nfrom equinlp.cli import main\nsys.exit(main({argv!r}))"
        done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
        assert done.returncode == code, done.stderr
        if code:
            assert done.stdout == "" and not (tmp_path / "rl").exists()
            assert done.stderr == "equinlp: error: this command needs gymnasium: pip install 'equinlp[rl]'\n"


BAD_INPUTS = [
    (["generate", ""], "a prompt is empty"),
    (["generate", "hi", "--model", "/nonexistent/model"], "--model /nonexistent/model does not exist"),
    (["generate", "hi", "--top-p", "2"], "top_p (--top-p) must be at most 1, got 2.0"),
    (["generate", "hi", "--max-new-tokens", "0"], "max_new_tokens (--max-new-tokens) must be at least 1"),
    (["generate", "hi", "--group", "gendr"], "unknown group 'gendr'; did you mean 'gender'?"),
    (["generate", "hi", "--group", "{tmp}/dup.json"], "lists ['man'] more than once"),
    (["bias", "run", "--samples", "-5"], "samples (--samples) must be at least 1, got -5"),
    (["bias", "run", "--batch-size", "0"], "batch_size (--batch-size) must be at least 1"),
    (["bias", "run", "--methods", "equizero-sentimnt"], "did you mean 'equizero-sentiment'?"),
    (["bias", "run", "--out", "{tmp}/file"], "is a file"),
    (["bias", "run", "--templates", "{tmp}/missing.txt"], "--templates {tmp}/missing.txt: No such file"),
    (["bias", "run", "--config", "{tmp}/bad.json"], "is not valid JSON"),
    (["bias", "run", "--top-k", "many"], "argument --top-k: invalid int value"),
    (["bias", "report", "{tmp}"], "no bias runs under"),
    (["scan", "report", "{root}/reports/rl"], "it holds runs of: rl"),
    (["scan", "run", "--test-limit", "0"], "test_limit (--test-limit) must be at least 1"),
    (["rl", "run", "--eval-every", "0"], "eval_every (--eval-every) must be at least 1"),
    (["rl", "run", "--eps-end", "2"], "eps_end (--eps-end) must be at most 1"),
    (["rl", "run", "--env", "cartpol"], "did you mean 'cartpole'?"),
    (["vision", "run", "--eval-images", "0"], "eval_images (--eval-images) must be at least 1"),
    (["vision", "run", "--out", "{tmp}/file"], "is a file"),
    (["vision", "clip", "--data-dir", "{tmp}", "--eval-every", "0"], "eval_every (--eval-every) must be at least 1"),
]


@pytest.mark.parametrize("argv, message", BAD_INPUTS, ids=[" ".join(a)[:40] for a, _ in BAD_INPUTS])
def test_bad_input_is_one_line_and_a_nonzero_exit(tmp_path, capsys, argv, message):
    """Every bad input ends in one line naming the culprit (exit 2), before any model loads; no traceback."""
    from equinlp.cli import main

    (tmp_path / "file").write_text("")
    (tmp_path / "bad.json").write_text("{")
    group = {"name": "d", "description": "", "source": "", "cycles": [["man", "woman"], ["man", "boy"]]}
    (tmp_path / "dup.json").write_text(json.dumps(group))
    root = str(Path(__file__).parents[1])
    argv = [a.replace("{tmp}", str(tmp_path)).replace("{root}", root) for a in argv]
    try:
        code = main(argv)
    except SystemExit as exit:  # argparse's own usage errors
        code = exit.code
    err = capsys.readouterr().err
    assert code == 2 and message.replace("{tmp}", str(tmp_path)) in err
    assert "Traceback" not in err and err.count("\n") == 1
