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


def test_fine_tuned_base_is_saved_and_restored(tok, swap, tmp_path):
    model = eq.equitune(tiny_causal_lm(len(tok)), swap)
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
