"""One method registry: the config is the single source of truth, and save/load rebuilds the same aggregator."""

import pytest
import torch

import equinlp as eq
from equinlp.methods.aggregate import Argmin, Mean, Relaxed, Weighted, WeightNet
from equinlp.methods.registry import METHODS, check_method, config_fields, make_aggregator, method_names
from equinlp.models.config import aggregator_from_config
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
    assert method_names() == tuple(METHODS) == ("equitune", "equizero", "lambda")
    assert method_names(with_base=True)[0] == "base"
    assert isinstance(make_aggregator("equitune"), Mean)
    assert isinstance(make_aggregator("equizero", proxy="max_prob"), Argmin)
    assert isinstance(make_aggregator("lambda", features=8, general_tokens=[1]), Relaxed)
    for name in METHODS:
        aggregator = make_aggregator(name, features=8, proxy="max_logit", straight_through=False, weight_net_hidden=7)
        config = eq.EquiConfig(**config_fields(aggregator))
        assert repr(aggregator_from_config(config, features=8)) == repr(aggregator)


def test_unknown_methods_and_missing_feature_width_are_clear_errors():
    with pytest.raises(ValueError, match="unknown method 'bogus'; choose from equitune, equizero, lambda"):
        check_method("bogus")
    with pytest.raises(ValueError, match="unknown method"):
        eq.EquiConfig(method="base")
    check_method("base", with_base=True)
    with pytest.raises(ValueError, match="feature width"):
        make_aggregator("lambda")


def test_cli_and_apps_go_through_the_registry(tok, swap):
    from equinlp.apps.bias.generate import METHODS as BIAS_METHODS
    from equinlp.apps.generate import METHODS as CLI_METHODS
    from equinlp.apps.generate import build_method
    from equinlp.apps.rl.qnet import METHODS as RL_METHODS
    from equinlp.apps.scan.equi import METHODS as SCAN_METHODS
    from equinlp.apps.vision.wrap import METHODS as VISION_METHODS

    assert SCAN_METHODS == RL_METHODS == VISION_METHODS == method_names(with_base=True)
    assert CLI_METHODS == (*method_names(with_base=True), "canonical")  # canonical: the sequence-level one
    assert set(method_names()) <= set(BIAS_METHODS)
    base = tiny_causal_lm(len(tok))
    base.config._name_or_path = "tiny"  # named, as a pretrained base is: not copied on save
    plain = build_method(base, swap, "base", "entropy")  # the base under the trivial group: the same sampler
    assert plain.unwrap() is base and plain.group.order == 1
    model = build_method(base, swap, "equizero", "max_prob")
    assert model.equi_config.method == "equizero" and model.equi_config.proxy == "max_prob"
