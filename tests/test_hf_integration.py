"""The wrapper as an HF citizen: Auto classes, pipeline, lm-eval's HFLM, num_parameters, push_to_hub."""

import types
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, PreTrainedModel, pipeline

import equinlp as eq
from equinlp.models import EquiCausalLM, EquiSeq2SeqLM
from equinlp.testing import tiny_causal_lm, tiny_seq2seq


def saved_base(tmp_path, tok, family="gpt2"):
    """A tiny base model reloaded from a folder, so that the wrapper's config can name where it came from."""
    base = tiny_causal_lm(len(tok)) if family == "gpt2" else tiny_seq2seq(len(tok), "t5")
    base.save_pretrained(tmp_path / "base0")
    auto = AutoModelForCausalLM if family == "gpt2" else AutoModelForSeq2SeqLM
    return auto.from_pretrained(tmp_path / "base0").eval()


@pytest.fixture
def folder(tmp_path, tok, swap):
    """A λ-equitune wrapper (non-trivial λ-net) saved with its tokenizer: ``(wrapper, folder)``."""
    model = eq.lambda_equitune(saved_base(tmp_path, tok), swap, hidden=16)
    torch.nn.init.normal_(model.aggregator.weight_net.net[-1].weight)
    model.save_pretrained(tmp_path / "equi")
    tok.save_pretrained(tmp_path / "equi")
    return model, tmp_path / "equi"


def swapped(action, ids: torch.Tensor) -> torch.Tensor:
    """``g·ids`` for the non-identity element of a Z2 action."""
    return action.ids.act_all(ids[None])[1]


def test_auto_classes_load_the_wrapper(folder, tok):
    model, path = folder
    assert isinstance(model, PreTrainedModel)
    config = AutoConfig.from_pretrained(path)
    assert isinstance(config, eq.EquiConfig) and config.model_type == "equinlp" and config.method == "lambda"
    loaded = AutoModelForCausalLM.from_pretrained(path)
    assert isinstance(loaded, EquiCausalLM) and not loaded.training
    x = tok(["the man said that he"], return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(loaded(**x).logits, model(**x).logits)


def test_auto_seq2seq_class_loads_a_seq2seq_wrapper(tmp_path, tok, swap):
    model = eq.equizero(saved_base(tmp_path, tok, "t5"), swap, proxy="max_prob")
    model.save_pretrained(tmp_path / "equi")
    loaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "equi")
    assert isinstance(loaded, EquiSeq2SeqLM) and loaded.equi_config.proxy == "max_prob"
    with pytest.raises(ValueError, match="seq2seq wrapper"):
        AutoModelForCausalLM.from_pretrained(tmp_path / "equi")


def test_text_generation_pipeline_generates_equivariantly(folder, tok, swap):
    _, path = folder
    pipe = pipeline("text-generation", model=str(path), tokenizer=tok)
    assert isinstance(pipe.model, EquiCausalLM)
    outs = pipe(["the man said that", "the woman said that"], max_new_tokens=6, do_sample=False, return_tensors=True)
    man, woman = (torch.tensor(out[0]["generated_token_ids"]) for out in outs)
    assert torch.equal(swapped(swap, man), woman)


def test_pipeline_without_a_task_needs_the_hub(folder):
    """HF infers a pipeline's task from the hub's metadata; offline it refuses (for every model): pass the task."""
    with pytest.raises(RuntimeError, match="offline"):
        pipeline(model=str(folder[1]))


LM_EVAL_MISSING = "lm-eval not installed: pip install 'equinlp[lm-eval]'"


def test_lm_eval_hflm_loads_the_wrapper(tmp_path, tok, swap):
    """Scores and generations through HFLM(pretrained=DIR) move with the swap (equitune: exact for Z2)."""
    huggingface = pytest.importorskip("lm_eval.models.huggingface", reason=LM_EVAL_MISSING)
    from lm_eval.api.instance import Instance

    path = tmp_path / "equi"
    eq.equitune(saved_base(tmp_path, tok), swap).save_pretrained(path)
    tok.save_pretrained(path)
    lm = huggingface.HFLM(pretrained=str(path), device="cpu", batch_size=2)
    assert isinstance(lm.model, EquiCausalLM)
    pair = [("the man said that", " he"), ("the woman said that", " she")]
    (man, _), (woman, _) = lm.loglikelihood([Instance("loglikelihood", {}, req, i) for i, req in enumerate(pair)])
    assert man == woman
    settings = {"until": ["\n"], "max_gen_toks": 5, "do_sample": False}
    prompts = [("the man said that", settings), ("the woman said that", settings)]
    man, woman = lm.generate_until([Instance("generate_until", {}, req, i) for i, req in enumerate(prompts)])
    man_ids = torch.tensor(tok(man, add_special_tokens=False)["input_ids"])
    assert tok.decode(swapped(swap, man_ids)) == tok.decode(tok(woman, add_special_tokens=False)["input_ids"])


def test_num_parameters_counts_the_lambda_net(tok, swap):
    model = eq.lambda_equitune(tiny_causal_lm(len(tok)), swap, hidden=8)
    extra = sum(p.numel() for p in model.aggregator.parameters())
    assert extra > 0 and model.num_parameters() == model.unwrap().num_parameters() + extra


def test_push_to_hub_uploads_the_equinlp_folder(monkeypatch, tok, swap):
    from transformers.utils import hub

    model = eq.lambda_equitune(tiny_causal_lm(len(tok)), swap, hidden=8)
    uploaded = {}

    def upload(self, working_dir, repo_id, **kwargs):
        uploaded.update({p.name: p.read_bytes() for p in Path(working_dir).iterdir() if p.is_file()})

    fake_api = types.SimpleNamespace(create_repo=lambda repo_id, **kw: types.SimpleNamespace(repo_id=repo_id))
    monkeypatch.setattr(hub, "hf_api", lambda: fake_api)
    monkeypatch.setattr(hub, "create_and_tag_model_card", lambda *a, **kw: types.SimpleNamespace(save=lambda path: None))
    monkeypatch.setattr(type(model), "_upload_modified_files", upload)
    model.push_to_hub("me/equi-gpt2")
    assert {"config.json", "equinlp_action.safetensors", "equinlp_weights.safetensors"} <= set(uploaded)
    assert b'"model_type": "equinlp"' in uploaded["config.json"]


def test_base_config_attributes_read_through_the_wrapper(tok, swap):
    """``model.config`` is the base's config (pipelines, HFLM and generate read its special ids and sizes)."""
    base = tiny_seq2seq(len(tok), "t5")
    model = eq.equitune(base, swap)
    for name in ("is_encoder_decoder", "eos_token_id", "vocab_size", "decoder_start_token_id", "pad_token_id"):
        assert getattr(model.config, name) == getattr(base.config, name)
    assert model.generation_config is base.generation_config and model.main_input_name == base.main_input_name
    assert model.base_model is base and model.get_input_embeddings() is base.get_input_embeddings()
