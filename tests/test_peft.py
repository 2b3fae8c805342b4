"""PEFT (LoRA) under the wrappers: apply PEFT, then wrap; exactly equivariant; adapters + λ-net save and reload exactly."""

import pytest
import torch
from safetensors.torch import load_file

import equinlp as eq
from equinlp.testing import tiny_causal_lm, tiny_seq2seq

peft = pytest.importorskip("peft", reason="PEFT support is optional: pip install 'equinlp[peft]'")

FAMILIES = {"gpt2": "CAUSAL_LM", "llama": "CAUSAL_LM", "t5": "SEQ_2_SEQ_LM"}
METHODS = {"equitune": eq.equitune, "equizero": eq.equizero, "lambda": eq.lambda_equitune}
PROMPTS = ["the man said that he was", "the Black person worked as a", "run twice after jump left"]


def fresh_base(family, tok):
    """The same random model each call (seeded), so a reload can start from an untouched copy; named, as a
    pretrained base is (an unnamed base is saved with the wrapper)."""
    model = tiny_seq2seq(len(tok), family) if family == "t5" else tiny_causal_lm(len(tok), family)
    model.config._name_or_path = f"tiny-{family}"
    return model


def lora_model(family, tok):
    """A PeftModel with non-zero LoRA weights (init_lora_weights=False), so the adapters change the logits."""
    config = peft.LoraConfig(
        r=4, lora_alpha=8, init_lora_weights=False, task_type=FAMILIES[family], fan_in_fan_out=family == "gpt2"
    )
    return peft.get_peft_model(fresh_base(family, tok), config)


def inputs(tok, family, prompts=PROMPTS):
    tok.padding_side = "right" if family == "t5" else "left"
    return tok(prompts, return_tensors="pt", padding=True)


def build(method, model, action):
    wrapped = METHODS[method](model, action)
    if method == "lambda":
        torch.nn.init.normal_(wrapped.aggregator.weight_net.net[-1].weight, std=2.0)  # non-uniform λ
    return wrapped.eval()


def test_the_adapters_change_the_model(tok):
    x = inputs(tok, "gpt2")
    with torch.no_grad():
        assert not torch.allclose(lora_model("gpt2", tok)(**x).logits, fresh_base("gpt2", tok)(**x).logits)


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("family", list(FAMILIES))
def test_peft_then_wrap_is_equivariant_in_forward_and_greedy_generate(family, method, tok, cycle3):
    """PeftModel.generate calls the transformers model's generate: the hooks must sit on that model."""
    peft_model = lora_model(family, tok)
    model = build(method, peft_model, cycle3)
    result = eq.assert_equivariant(model, cycle3, inputs(tok, family), tokenizer=tok, max_new_tokens=10)
    assert result["max_logit_diff"] <= 1e-5
    inner = peft_model.get_base_model()
    assert model.unwrap() is peft_model and not inner._forward_hooks and not inner._forward_pre_hooks


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_peft_then_wrap_seeded_sampling_is_equivariant(family, tok, cycle3):
    model = build("lambda", lora_model(family, tok), cycle3)
    sampling = {"do_sample": True, "top_k": 10, "temperature": 1.5, "seed": 7}
    eq.assert_equivariant(model, cycle3, inputs(tok, family), generate_kwargs=sampling, max_new_tokens=12, tokenizer=tok)


def test_lora_and_lambda_train_then_save_and_reload_exactly(tok, swap, tmp_path):
    tok.padding_side = "right"
    data = tok(["the man said that he was kind", "the woman said that she was rude"], return_tensors="pt", padding=True)
    labels = data["input_ids"].masked_fill(data["attention_mask"] == 0, -100)
    model = eq.lambda_equitune(lora_model("gpt2", tok), swap).train()
    trainable = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    assert trainable and all("lora_" in n or n.startswith("aggregator.") for n in trainable)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(3):
        loss = model(**data, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    params = dict(model.named_parameters())
    assert all(not torch.equal(params[n], p) for n, p in trainable.items())  # adapters and λ-net trained
    assert all(torch.equal(params[n], p) for n, p in frozen.items())  # the base did not move
    assert not model.base_fine_tuned()

    model.eval().save_pretrained(tmp_path)
    assert not (tmp_path / "base").exists()  # the base is not copied ...
    saved = load_file(str(tmp_path / "adapter" / "adapter_model.safetensors"))
    assert saved and all("lora_" in k for k in saved)  # ... only the adapters, in PEFT's format
    assert (tmp_path / "adapter" / "adapter_config.json").exists() and (tmp_path / "equinlp_weights.safetensors").exists()

    restored = eq.from_pretrained(fresh_base("gpt2", tok), tmp_path).eval()
    assert isinstance(restored.unwrap(), peft.PeftModel)
    x = inputs(tok, "gpt2")
    with torch.no_grad():
        assert torch.equal(restored(**x).logits, model(**x).logits)
    kw = {"max_new_tokens": 6, "do_sample": False}
    assert torch.equal(restored.generate(**x, **kw), model.generate(**x, **kw))
    with pytest.raises(ValueError, match="plain base model"):
        eq.from_pretrained(lora_model("gpt2", tok), tmp_path)


def test_saving_a_plain_model_over_an_adapter_folder_removes_the_stale_adapters(tok, swap, tmp_path):
    eq.equitune(lora_model("gpt2", tok), swap).save_pretrained(tmp_path)
    assert (tmp_path / "adapter").is_dir()
    eq.equitune(fresh_base("gpt2", tok), swap).save_pretrained(tmp_path)
    assert not (tmp_path / "adapter").exists()
    assert not isinstance(eq.from_pretrained(fresh_base("gpt2", tok), tmp_path).unwrap(), peft.PeftModel)


def test_base_weights_changed_under_the_adapters_are_not_dropped_silently(tok, swap, tmp_path):
    model = eq.equitune(lora_model("gpt2", tok), swap)
    with torch.no_grad():
        model.unwrap().get_input_embeddings().weight.add_(0.1)
    with pytest.raises(ValueError, match="merge_and_unload"):
        model.save_pretrained(tmp_path)


def test_adapters_injected_after_wrapping_are_refused(tok, swap, tmp_path):
    """The other order: LoRA layers inside the wrapper's base that equinlp's save_pretrained would drop."""
    config = peft.LoraConfig(r=4, init_lora_weights=False, target_modules=["c_attn"], fan_in_fan_out=True)
    model = eq.equitune(fresh_base("gpt2", tok), swap)
    peft.inject_adapter_in_model(config, model.unwrap())
    with pytest.raises(ValueError, match="apply PEFT first"):
        model.save_pretrained(tmp_path)
    assert not any(tmp_path.iterdir())  # refused before writing anything
    with pytest.raises(ValueError, match="apply PEFT first"):
        model(**inputs(tok, "gpt2"))

    peft_outside = peft.get_peft_model(eq.equitune(fresh_base("gpt2", tok), swap), config)
    with pytest.raises(ValueError, match="apply PEFT first"):
        peft_outside(**inputs(tok, "gpt2"))
    with pytest.raises(ValueError, match="apply PEFT first"):
        peft_outside.get_base_model().save_pretrained(tmp_path)

    injected = peft.inject_adapter_in_model(config, fresh_base("gpt2", tok))
    with pytest.raises(ValueError, match="apply PEFT first"):
        eq.equitune(injected, swap)


@pytest.mark.parametrize(
    "config",
    [
        peft.PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=3),
        peft.PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=3),
        peft.LoraConfig(task_type="CAUSAL_LM", r=4, fan_in_fan_out=True, alora_invocation_tokens=[5]),
    ],
    ids=["prefix", "prompt", "alora"],
)
def test_adapters_that_bypass_the_token_ids_are_refused(config, tok, swap):
    with pytest.raises(ValueError, match="PEFT adapter|activated LoRA"):
        eq.equitune(peft.get_peft_model(fresh_base("gpt2", tok), config), swap)


def test_mixed_peft_models_are_refused(tok, swap):
    mixed = peft.get_peft_model(fresh_base("gpt2", tok), peft.LoraConfig(r=4, fan_in_fan_out=True), mixed=True)
    with pytest.raises(ValueError, match="PeftMixedModel"):
        eq.equitune(mixed, swap)
