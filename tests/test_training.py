"""The wrappers train unchanged in a plain loop, an accelerate loop and the HF Trainer; save/load round-trips."""

import pytest
import torch
from datasets import Dataset

import equinlp as eq
from equinlp.testing import tiny_causal_lm, tiny_seq2seq

TEXTS = ["the man said that he was kind", "the woman said that she was rude", "the Black person worked as a nurse"]


def batch(tok):
    tok.padding_side = "right"
    x = tok(TEXTS, return_tensors="pt", padding=True)
    labels = x["input_ids"].masked_fill(x["attention_mask"] == 0, -100)
    return {**x, "labels": labels}


@pytest.mark.parametrize("method", ["equitune", "equizero", "lambda"])
def test_plain_loop_lowers_the_loss_and_trains_base_and_lambda(method, tok, swap):
    base = tiny_causal_lm(len(tok))
    model = {"equitune": eq.equitune, "equizero": eq.equizero, "lambda": eq.lambda_equitune}[method](base, swap).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    data = batch(tok)
    losses = []
    for _ in range(15):
        loss = model(**data).loss
        optimizer.zero_grad()
        loss.backward()
        assert base.get_input_embeddings().weight.grad.abs().sum() > 0  # straight-through reaches the base
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]
    if method == "lambda":
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.aggregator.parameters())


def test_loss_matches_cross_entropy_of_the_aggregated_logits(tok, swap):
    model = eq.equitune(tiny_causal_lm(len(tok)), swap).eval()
    data = batch(tok)
    out = model(**data)
    logits, labels = out.logits[:, :-1], data["labels"][:, 1:]
    expected = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)
    assert torch.allclose(out.loss, expected)
    assert list(out.keys())[0] == "loss"  # HF convention: outputs[0] is the loss


def test_seq2seq_loss_and_accelerate_loop(tok):
    from accelerate import Accelerator

    action = eq.vocab_permutation_pair(tok, [("jump", "run")], tok, [("I_JUMP", "I_RUN")])
    model = eq.equizero(tiny_seq2seq(len(tok)), action).train()
    tok.padding_side = "right"
    src = tok(["jump twice", "run left", "walk after jump"], return_tensors="pt", padding=True)
    tgt = tok(["I_JUMP I_JUMP", "I_TURN_LEFT I_RUN", "I_JUMP I_WALK"], return_tensors="pt", padding=True)["input_ids"]
    labels = tgt.masked_fill(tgt == tok.pad_token_id, -100)
    accelerator = Accelerator(cpu=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model, optimizer = accelerator.prepare(model, optimizer)
    first = None
    for _ in range(15):
        loss = model(**src, labels=labels).loss
        first = first if first is not None else loss.item()
        optimizer.zero_grad()
        accelerator.backward(loss)
        optimizer.step()
    assert loss.item() < 0.8 * first


def test_hf_trainer_trains_the_wrapper(tok, swap, tmp_path):
    from transformers import Trainer, TrainingArguments

    model = eq.lambda_equitune(tiny_causal_lm(len(tok)), swap)
    data = batch(tok)
    dataset = Dataset.from_dict({k: v.tolist() for k, v in data.items()})
    before = [p.detach().clone() for p in model.aggregator.parameters()]
    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=4,
        per_device_train_batch_size=3,
        learning_rate=1e-2,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        logging_steps=1,
        disable_tqdm=True,
    )
    result = Trainer(model=model, args=args, train_dataset=dataset).train()
    assert result.training_loss > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, model.aggregator.parameters(), strict=True))


@pytest.mark.parametrize("family", ["gpt2", "t5"])
@pytest.mark.parametrize("method", ["equitune", "equizero", "lambda"])
def test_save_and_load_round_trip(method, family, tok, cycle3, tmp_path):
    base = tiny_causal_lm(len(tok)) if family == "gpt2" else tiny_seq2seq(len(tok), "t5")
    base.config._name_or_path = "tiny"  # as a pretrained model is named: it can be reloaded without a copy
    model = {"equitune": eq.equitune, "equizero": eq.equizero, "lambda": eq.lambda_equitune}[method](base, cycle3)
    if method == "lambda":
        torch.nn.init.normal_(model.aggregator.weight_net.net[-1].weight)
    model.eval().save_pretrained(tmp_path)
    assert not (tmp_path / "base").exists()  # not fine-tuned: the base model is not copied
    restored = eq.from_pretrained(base, tmp_path).eval()
    x = tok(["the Black person was known for"], return_tensors="pt")
    extra = {"decoder_input_ids": torch.tensor([[0, 5, 6]])} if family == "t5" else {}
    with torch.no_grad():
        assert torch.equal(restored(**x, **extra).logits, model(**x, **extra).logits)
    assert restored.equi_config.method == method and restored.group == cycle3.group


def test_a_base_with_no_name_is_saved_with_the_wrapper(tok, swap, tmp_path):
    """Built from a config (nothing to reload it from): the folder must hold it."""
    model = eq.equitune(tiny_causal_lm(len(tok)), swap)
    model.save_pretrained(tmp_path)
    x = tok(["the man said"], return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(eq.from_pretrained(None, tmp_path)(**x).logits, model(**x).logits)


def test_a_change_that_keeps_every_sum_is_still_fine_tuning(tok, swap):
    """Two embedding rows swapped: each parameter's sum is unchanged, its version counter is not."""
    model = eq.equitune(tiny_causal_lm(len(tok)), swap)
    rows = tok.convert_tokens_to_ids(["man", "woman"])
    with torch.no_grad():
        weight = model.unwrap().get_input_embeddings().weight
        weight[rows] = weight[rows[::-1]].clone()
    assert model.base_fine_tuned()


def test_fine_tuned_base_is_saved_and_restored(tok, swap, tmp_path):
    model = eq.equitune(tiny_causal_lm(len(tok)), swap)
    model.unwrap().config._name_or_path = "tiny"
    assert not model.base_fine_tuned()
    with torch.no_grad():
        model.unwrap().get_input_embeddings().weight.add_(0.1)
    assert model.base_fine_tuned()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "base" / "config.json").exists()
    restored = eq.from_pretrained(None, tmp_path)
    x = tok(["the man said"], return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(restored(**x).logits, model(**x).logits)
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary files left behind


def test_wrapper_passes_attributes_through_and_unwraps(tok, swap):
    base = tiny_causal_lm(len(tok))
    model = eq.equitune(base, swap)
    assert model.config is base.config and model.device == base.device and model.unwrap() is base
    x = tok(["the man said"], return_tensors="pt")
    with torch.no_grad():
        model(**x)
    assert not base._forward_hooks and not base._forward_pre_hooks  # hooks live only inside calls


# --- the HF Trainer with its defaults ---------------------------------------------------------------


def no_dropout(model):
    """Dropout off in training mode too (nn.Dropout modules and the float rates attention layers keep)."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        for name in ("dropout", "attention_dropout"):
            if isinstance(getattr(module, name, None), float):
                setattr(module, name, 0.0)
    return model


def trainer_args(tmp_path, **kwargs):
    from transformers import TrainingArguments

    defaults = dict(output_dir=str(tmp_path), report_to=[], use_cpu=True, disable_tqdm=True, save_strategy="no", seed=0)
    return TrainingArguments(**{**defaults, **kwargs})


def test_wrappers_are_built_and_loaded_in_eval_mode(tok, swap, tmp_path):
    model = eq.lambda_equitune(tiny_causal_lm(len(tok)), swap)
    torch.nn.init.normal_(model.aggregator.weight_net.net[-1].weight)
    assert not model.training and not model.unwrap().training and not model.aggregator.training
    x = tok(["the man said that he"], return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(model(**x).logits, model(**x).logits)  # no λ-net dropout
    model.save_pretrained(tmp_path)
    assert not eq.from_pretrained(model.unwrap(), tmp_path).training


@pytest.mark.parametrize("family", ["gpt2", "t5"])
def test_trainer_gradient_accumulation_matches_one_big_batch(family, tok, swap, tmp_path):
    """Accumulating 2 batches of 1 gives the loss and the update of 1 batch of 2 (SGD: the update is -lr·grad)."""
    from transformers import Trainer

    tok.padding_side = "right"
    if family == "gpt2":
        data = batch(tok)
        data = {k: v[:2] for k, v in data.items()}
    else:
        src = tok(["jump twice", "run left after walk"], return_tensors="pt", padding=True)
        tgt = tok(["he said", "she said that he was kind"], return_tensors="pt", padding=True)["input_ids"]
        data = {**src, "labels": tgt.masked_fill(tgt == tok.pad_token_id, -100)}
    dataset = Dataset.from_dict({k: v.tolist() for k, v in data.items()})
    results = []
    for batch_size, steps in ((2, 1), (1, 2)):
        base = tiny_causal_lm(len(tok)) if family == "gpt2" else tiny_seq2seq(len(tok), "t5")
        model = eq.equitune(no_dropout(base), swap)
        args = trainer_args(
            tmp_path / str(steps),
            max_steps=1,
            per_device_train_batch_size=batch_size,
            gradient_accumulation_steps=steps,
            optim="sgd",
            learning_rate=1.0,
            lr_scheduler_type="constant",
            max_grad_norm=0.0,
        )
        loss = Trainer(model=model, args=args, train_dataset=dataset).train().training_loss
        results.append((loss, [p.detach().clone() for p in model.parameters()]))
    (loss1, params1), (loss2, params2) = results
    assert loss2 == pytest.approx(loss1, rel=1e-5)
    for a, b in zip(params1, params2, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_trainer_label_smoothing_shifts_the_causal_labels(tok, swap, tmp_path):
    from transformers import Trainer

    model = eq.equitune(tiny_causal_lm(len(tok)), swap)
    data = batch(tok)
    trainer = Trainer(model=model, args=trainer_args(tmp_path, label_smoothing_factor=0.1))
    loss = trainer.compute_loss(model, dict(data))
    with torch.no_grad():
        logp = model(**{k: v for k, v in data.items() if k != "labels"}).logits[:, :-1].float().log_softmax(-1)
    labels = data["labels"][:, 1:]
    keep = labels != -100
    nll = -logp.gather(-1, labels.clamp(min=0)[..., None])[..., 0][keep].mean()
    uniform = -logp.mean(-1)[keep].mean()
    torch.testing.assert_close(loss, 0.9 * nll + 0.1 * uniform)


def test_trainer_checkpoint_of_a_tied_model_reloads(tok, swap, tmp_path):
    """GPT-2 ties its embeddings; a default run (save_strategy=steps) writes a folder from_pretrained reads."""
    from transformers import Trainer

    base = no_dropout(tiny_causal_lm(len(tok)))
    assert base.config.tie_word_embeddings
    model = eq.lambda_equitune(base, swap)
    dataset = Dataset.from_dict({k: v.tolist() for k, v in batch(tok).items()})
    steps = dict(save_strategy="steps", save_steps=2, max_steps=2)  # save_strategy: TrainingArguments' default
    args = trainer_args(tmp_path, **steps, per_device_train_batch_size=3, learning_rate=1e-2)
    Trainer(model=model, args=args, train_dataset=dataset).train()
    restored = eq.from_pretrained(tiny_causal_lm(len(tok)), tmp_path / "checkpoint-2")
    x = tok(["the woman said that she"], return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(restored(**x).logits, model.eval()(**x).logits)


def test_resaving_a_reloaded_fine_tuned_wrapper_is_self_contained(tok, swap, tmp_path):
    import shutil

    model = eq.equitune(tiny_causal_lm(len(tok)), swap)
    with torch.no_grad():
        model.unwrap().get_input_embeddings().weight.add_(0.1)
    model.save_pretrained(tmp_path / "one")
    eq.from_pretrained(None, tmp_path / "one").save_pretrained(tmp_path / "two")
    shutil.rmtree(tmp_path / "one")
    restored = eq.from_pretrained(None, tmp_path / "two")
    assert restored.equi_config.base_fine_tuned and (tmp_path / "two" / "base" / "config.json").exists()
    x = tok(["the man said"], return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(restored(**x).logits, model(**x).logits)


def test_lambda_net_follows_the_base_device(tok, swap):
    base = tiny_causal_lm(len(tok)).to("meta")
    model = eq.lambda_equitune(base, swap)
    assert {p.device.type for p in model.aggregator.parameters()} == {"meta"}


def test_general_tokens_the_group_moves_are_refused(tok, swap):
    with pytest.raises(ValueError, match="moved by the group"):
        eq.equitune(tiny_causal_lm(len(tok)), swap, general_tokens=[tok.convert_tokens_to_ids("he")])
