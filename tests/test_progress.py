"""Progress you can see: bars on the main process's terminal (or when asked), and a one-line plan at the start."""

import logging

import pytest

from equinlp.harness import distributed, progress, run_task
from tests.toy_task import ToyConfig, ToyTask


@pytest.mark.parametrize(("wanted", "disable"), [("", None), ("1", False), ("always", False), ("0", True)])
def test_bars_follow_the_terminal_unless_asked(monkeypatch, wanted, disable):
    """None: tqdm shows the bar on a terminal only; False: shown anywhere (--progress); True: hidden."""
    monkeypatch.setenv(progress.ENV, wanted)
    assert progress.disabled() is disable
    assert progress.progress(range(3)).disable is (disable is not False)  # pytest's stderr is not a terminal


def test_only_the_main_process_draws(monkeypatch):
    monkeypatch.setenv(progress.ENV, "1")
    monkeypatch.setattr(distributed, "is_main", lambda: False)
    assert progress.disabled() is True


def test_the_progress_flag_shows_bars_off_a_terminal(monkeypatch, capsys):
    from equinlp.cli import main

    monkeypatch.setenv(progress.ENV, "")  # restored after the test
    with pytest.raises(SystemExit):
        main(["--progress", "--help"])
    assert progress.disabled() is False and "--progress" in capsys.readouterr().out


class SizedToy(ToyTask):
    def size(self, config, stage, cell):
        return (config.steps if stage == "run" else 1), "steps"


def test_a_run_starts_with_a_one_line_plan(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="equinlp")
    config = ToyConfig(seeds=(0, 1), out=str(tmp_path))
    run_task(SizedToy(), config)
    assert f"toy: 3 runs, 21 steps; 0 already done, 3 to compute in {tmp_path}" in caplog.text
    caplog.clear()
    run_task(SizedToy(), ToyConfig(seeds=(0, 1, 2), out=str(tmp_path)))
    assert f"toy: 4 runs, 31 steps; 3 already done, 1 to compute in {tmp_path}" in caplog.text


def test_hf_loading_bars_follow_the_same_rule(monkeypatch):
    """Off a terminal HF's "Loading weights" bar stays quiet while a model loads, unless progress is asked for."""
    from transformers.utils import logging as hf_logging

    from equinlp.harness.model_options import hf_progress_bars

    seen = []
    for wanted in ("", "1"):
        monkeypatch.setenv("EQUINLP_PROGRESS", wanted)
        with hf_progress_bars():
            seen.append(hf_logging.is_progress_bar_enabled())
    assert seen == [False, True]  # pytest's stderr is not a terminal
    assert hf_logging.is_progress_bar_enabled()  # put back as it was
