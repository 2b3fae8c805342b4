"""One method registry: the config is the single source of truth, and save/load rebuilds the same aggregator."""

import dataclasses

import pytest
import torch

import equinlp as eq
from equinlp.errors import UnknownName
from equinlp.methods import registry
from equinlp.methods.aggregate import Argmin, Mean, Relaxed, Weighted, WeightNet, select_best
from equinlp.methods.registry import METHODS, build_aggregator, describe, make_aggregator, method_names
from equinlp.testing import tiny_causal_lm, tiny_seq2seq

GENERAL = ["his", "her"]  # words the gender group does not move

# (paper-name builder, its non-default keyword arguments): a PEFT-style config_kwargs matrix
CONFIG_KWARGS = [
    ("equitune", {}),
    ("equitune", {"sampler": "hf"}),
    ("equitune", {"general_tokens": GENERAL}),
    ("equizero", {"straight_through": False}),
    ("equizero", {"proxy": "max_prob"}),
    ("equizero", {"proxy": "max_logit", "straight_through": False, "general_tokens": GENERAL}),
    ("lambda", {"hidden": 32}),
    ("lambda", {"dropout": 0.1}),
    ("lambda", {"hidden": 32, "dropout": 0.0, "general_tokens": GENERAL, "sampler": "hf"}),
]
BUILDERS = {"equitune": eq.equitune, "equizero": eq.equizero, "lambda": eq.lambda_equitune}


def build(method, kwargs, base, tok, action):
    kwargs = dict(kwargs)
    if "general_tokens" in kwargs:
        kwargs["general_tokens"] = tok.convert_tokens_to_ids(kwargs["general_tokens"])
    return BUILDERS[method](base, action, **kwargs)


def comparable(config):
    return {k: v for k, v in config.to_dict().items() if k != "transformers_version"}


@pytest.mark.parametrize("family", ["gpt2", "t5"])
@pytest.mark.parametrize(("method", "kwargs"), CONFIG_KWARGS)
def test_save_load_round_trip_keeps_every_config_field(method, kwargs, family, tok, swap, tmp_path):
    base = tiny_causal_lm(len(tok)) if family == "gpt2" else tiny_seq2seq(len(tok), "t5")
    base.config._name_or_path = "tiny"  # named, as a pretrained base is: not copied on save
    model = build(method, kwargs, base, tok, swap)
    if method == "lambda":
        inner = model.aggregator.inner if isinstance(model.aggregator, Relaxed) else model.aggregator
        torch.nn.init.normal_(inner.weight_net.net[-1].weight)
    model.save_pretrained(tmp_path)
    restored = eq.from_pretrained(base, tmp_path)
    assert comparable(restored.equi_config) == comparable(model.equi_config)
    assert repr(restored.aggregator) == repr(model.aggregator)  # hidden width, dropout, proxy, straight-through
    for (k, a), (_, b) in zip(model.aggregator.state_dict().items(), restored.aggregator.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    inner = restored.aggregator.inner if isinstance(restored.aggregator, Relaxed) else restored.aggregator
    if method == "equizero":
        assert inner.straight_through == kwargs.get("straight_through", True)
        assert inner.proxy_name == kwargs.get("proxy", "entropy")
    if method == "lambda":
        assert inner.weight_net.hidden == kwargs.get("hidden", 100) and inner.weight_net.dropout == kwargs.get("dropout", 0.5)


@pytest.mark.parametrize(
    "aggregator",
    [lambda d: Argmin("max_prob", straight_through=False), lambda d: Weighted(WeightNet(d, hidden=32, dropout=0.2))],
    ids=["argmin-no-straight-through", "weightnet-hidden-32"],
)
def test_wrap_reads_the_config_from_the_aggregator(aggregator, tok, swap, tmp_path):
    """``wrap`` with a hand-built aggregator saves what it was built with, not the config's defaults."""
    base = tiny_causal_lm(len(tok))
    base.config._name_or_path = "tiny"  # named, as a pretrained base is: not copied on save
    model = eq.wrap(base, swap, aggregator(eq.feature_size(base)))
    model.save_pretrained(tmp_path)
    restored = eq.from_pretrained(base, tmp_path)
    assert repr(restored.aggregator) == repr(model.aggregator)
    assert comparable(restored.equi_config) == comparable(model.equi_config)


def test_registry_builds_each_method_and_reads_it_back():
    assert method_names() == ("equitune", "equizero", "lambda")
    assert registry.token_methods() == ("base", *method_names())
    assert registry.sequence_methods() == ("equitune", "equizero", "lambda", "canonical")
    assert isinstance(make_aggregator("base"), Mean) and isinstance(make_aggregator("equitune"), Mean)
    assert isinstance(make_aggregator("equizero", proxy="max_prob"), Argmin)
    assert isinstance(make_aggregator("lambda", features=8, general_tokens=[1]), Relaxed)
    for name in method_names():
        aggregator = make_aggregator(name, features=8, proxy="max_logit", straight_through=False, weight_net_hidden=7)
        config = eq.EquiConfig(**describe(aggregator))
        assert repr(build_aggregator(config, features=8)) == repr(aggregator)


def test_the_config_declares_the_registry_fields_with_its_defaults():
    config = eq.EquiConfig()
    plain = lambda value: list(value) if isinstance(value, list | tuple) else value  # noqa: E731
    for field in dataclasses.fields(registry.MethodSettings):
        assert plain(getattr(config, field.name)) == plain(field.default), field.name


def test_unknown_methods_and_missing_feature_width_are_clear_errors():
    with pytest.raises(UnknownName, match="unknown method 'equitun'; did you mean 'equitune'"):
        registry.method("equitun")
    with pytest.raises(ValueError, match="sequence level only"):
        eq.EquiConfig(method="canonical")
    with pytest.raises(ValueError, match="feature width"):
        make_aggregator("lambda")


@pytest.mark.parametrize("name", ["Equitune", "equi-tune", "equitune_", "", "equitune"])
def test_registration_checks_the_name(name):
    with pytest.raises(ValueError, match="method name|registered already"):
        registry.register_method(registry.Method(name, "a test method", build=lambda config, **_: Mean(), kind=Mean))


def test_table_names_resolve_through_the_registry():
    assert registry.variant("relaxed-equitune") == registry.Variant("relaxed-equitune", "equitune", relaxed=True)
    assert registry.variant("equizero-sentiment").method == "equizero" and registry.variant("equizero-sentiment").scored
    assert not registry.variant("canonical").entry.token_level and registry.variant("base").entry.trivial
    with pytest.raises(UnknownName, match="did you mean 'relaxed-lambda'"):
        registry.variant("relaxed-lamda")


def test_select_best_breaks_ties_by_key_then_by_the_least_copy():
    scores = torch.tensor([[1.0, 2.0, 0.0], [3.0, 2.0, 0.0], [3.0, 1.0, 0.0]])  # [G=3, B=3]
    assert select_best(scores)[0].tolist() == [1, 0, 0]
    keys = [["a", "b", "x"], ["a", "b", "y"], ["b", "b", "y"]]
    candidates = [["p", "q", "r"], ["p", "q", "s"], ["p", "q", "t"]]
    best, unresolved = select_best(scores, keys, candidates)
    assert best.tolist() == [2, 0, 1] and unresolved == [False, False, True]


def test_the_trivial_group_is_the_base_model_bit_for_bit(tok, swap):
    base = tiny_causal_lm(len(tok))
    inputs = tok(["the man said that he was", "the woman worked as a"], return_tensors="pt", padding=True)
    plain = eq.wrap(base, swap, method="base")
    assert plain.group.order == 1 and plain.equi_config.method == "base"
    with torch.no_grad():
        assert torch.equal(plain(**inputs).logits, base(**inputs).logits)


def test_cli_and_apps_go_through_the_registry(tok, swap):
    from equinlp.apps.bias.generate import METHODS as BIAS_METHODS
    from equinlp.apps.generate import METHODS as CLI_METHODS
    from equinlp.apps.generate import build_method
    from equinlp.apps.rl.qnet import METHODS as RL_METHODS
    from equinlp.apps.scan.equi import METHODS as SCAN_METHODS
    from equinlp.apps.vision.wrap import METHODS as VISION_METHODS

    assert SCAN_METHODS == RL_METHODS == VISION_METHODS == registry.token_methods()
    assert CLI_METHODS == tuple(METHODS)  # canonical too: the sequence-level one
    assert BIAS_METHODS == tuple(registry.VARIANTS)  # the recorded table names
    base = tiny_causal_lm(len(tok))
    base.config._name_or_path = "tiny"  # named, as a pretrained base is: not copied on save
    plain = build_method(base, swap, "base", "entropy")  # the base under the trivial group: the same sampler
    assert plain.unwrap() is base and plain.group.order == 1
    model = build_method(base, swap, "equizero", "max_prob")
    assert model.equi_config.method == "equizero" and model.equi_config.proxy == "max_prob"
