"""Vision: wrapped CNNs and CLIP are invariant on each architecture (every method and group: the matrix in
test_equivariance_matrix.py), equizero and λ weigh the copies as they should, the readers read their formats,
and the CNN protocol and the CLIP task run, refuse changed settings, resume bit for bit and report, on
scikit-learn's digits and a tiny saved CLIP."""

import copy
import dataclasses
import gzip
import pickle
import shutil

import numpy as np
import pytest
import torch
from torch import nn

from equinlp.apps.vision import clip_task
from equinlp.apps.vision import task as task_module
from equinlp.apps.vision import train as train_module
from equinlp.apps.vision.clip import CLIPClassifier, EquiCLIP, clip_prompts, templates_for, zero_shot_weights
from equinlp.apps.vision.clip_task import CLIPConfig
from equinlp.apps.vision.cnn import AlexNet, ResNet18, build_cnn
from equinlp.apps.vision.data import cifar, digits, fashion_mnist, find_fashion_mnist, image_folder
from equinlp.apps.vision.task import VisionConfig, VisionTask
from equinlp.apps.vision.wrap import InvariantClassifier
from equinlp.cli import main
from equinlp.harness import load_runs, run_task
from equinlp.harness.options import flag
from equinlp.harness.state import load_state
from equinlp.symmetry.actions import ImageTransform, Invariant
from equinlp.testing import TOLERANCE, check_equivariance, equivariance_error
from tests.fixtures import save_tiny_clip, tiny_clip

SIZES = {"resnet18": 32, "alexnet": 64}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def backbones():
    torch.manual_seed(0)
    return {"resnet18": build_cnn("resnet18", 10, 1).eval(), "alexnet": build_cnn("alexnet", 10, 1).eval()}


def wrap(backbone, group, method, proxy="max_prob"):
    model = InvariantClassifier(backbone, ImageTransform(group), method, proxy).eval()
    if model.weight_net is not None:  # a λ-net at its uniform start would be equitune: make it non-uniform
        nn.init.normal_(model.weight_net.net[-1].weight, std=0.5)
    return model


def in_dtype(module, dtype):
    """The module in ``dtype``, leaving the shared float32 fixture alone."""
    return module if dtype == torch.float32 else copy.deepcopy(module).to(dtype)


def assert_invariant(model, x):
    errors = check_equivariance(model, x)
    assert max(errors.values()) <= TOLERANCE[x.dtype], f"{model.method}: logits differ by {errors} (element: error)"


# float64 on the small backbone only (AlexNet needs 64 px, and float64 convolutions are slow on CPU)
ARCH_DTYPES = [("resnet18", torch.float32), ("resnet18", torch.float64), ("alexnet", torch.float32)]


@pytest.mark.parametrize("arch, dtype", ARCH_DTYPES, ids=lambda v: str(v).removeprefix("torch."))
def test_wrapped_cnn_is_invariant(backbones, arch, dtype):
    """Each architecture, with λ-equitune over D4 (a smoke test: the matrix has every method and group)."""
    x = torch.randn(2, 1, SIZES[arch], SIZES[arch], dtype=dtype)
    model = in_dtype(wrap(backbones[arch], "d4", "lambda"), dtype)
    with torch.no_grad():
        assert_invariant(model, x)
        # the backbone alone is not: so the check above can fail
        assert equivariance_error(model.backbone, model.transform, Invariant(model.transform.group), x)[1] > 1e-4


@pytest.mark.parametrize("method", ["equitune", "equizero", "lambda"])
def test_group_weights_sum_to_one_and_differ_from_uniform_but_for_equitune(backbones, method):
    x = torch.randn(2, 1, 32, 32)
    weights = wrap(backbones["resnet18"], "d4", method).group_weights(x)
    assert weights.shape == (8, 2)
    assert torch.allclose(weights.sum(0), torch.ones(2))
    uniform = torch.allclose(weights, torch.full_like(weights, 1 / 8))
    assert uniform == (method == "equitune")  # equizero and the randomised λ-net do not weigh the copies uniformly


def test_a_mirror_invariant_cnn_is_not_rotation_invariant(backbones):
    x = torch.randn(2, 1, 32, 32)
    model = wrap(backbones["resnet18"], "mirror", "equitune")
    with torch.no_grad():
        assert torch.allclose(model(x.flip(-1)), model(x), atol=1e-5)
        assert not torch.allclose(model(torch.rot90(x, 2, (-2, -1))), model(x), atol=1e-3)


def test_equizero_picks_the_most_confident_copy_and_entropy_the_sharpest(backbones):
    x = torch.randn(3, 1, 32, 32)
    for proxy, score in (("max_prob", lambda p: p.amax(-1)), ("entropy", lambda p: (p * p.log()).sum(-1))):
        model = wrap(backbones["resnet18"], "rot90", "equizero", proxy)
        with torch.no_grad():
            logits = model.copy_logits(x)  # [G, B, K]
            best = score(logits.softmax(-1)).argmax(0)
            assert torch.equal(model.group_weights(x).argmax(0), best)
            assert torch.allclose(model(x), logits[best, torch.arange(3)], atol=1e-6)


def test_equizero_trains_with_the_straight_through_gradient(backbones):
    model = wrap(build_cnn("resnet18", 10, 1), "rot90", "equizero").train()
    model(torch.randn(4, 1, 32, 32)).sum().backward()
    assert model.backbone.fc.weight.grad.abs().sum() > 0


def test_alexnet_needs_63_pixels_and_loads_torchvision_names():
    net = AlexNet(num_classes=10, in_channels=1)
    with pytest.raises(ValueError, match="at least 63"):
        net(torch.randn(1, 1, 32, 32))
    torchvision_names = {k.replace("conv.", "features.", 1): v + 1 for k, v in net.state_dict().items()}
    assert "features.0.weight" in torchvision_names
    fresh = AlexNet(num_classes=10, in_channels=1)
    fresh.load_state_dict(torchvision_names)
    assert torch.equal(fresh.conv[0].weight, net.conv[0].weight + 1)
    assert set(ResNet18().state_dict()) >= {"conv1.weight", "layer4.1.bn2.running_mean", "fc.bias"}


def test_unknown_names_are_refused(backbones):
    with pytest.raises(ValueError, match="unknown image group 'rot45'"):
        InvariantClassifier(backbones["resnet18"], ImageTransform("rot45"), "equitune")
    with pytest.raises(ValueError, match="unknown method 'mean'"):
        InvariantClassifier(backbones["resnet18"], ImageTransform("rot90"), "mean")
    with pytest.raises(ValueError, match="unknown architecture 'vgg'"):
        build_cnn("vgg", 10)
    with pytest.raises(ValueError, match="unknown dataset"):
        VisionConfig(dataset="mnist")


# --- CLIP ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clip():
    model, tokenizer = tiny_clip()
    weights = zero_shot_weights(model, tokenizer, ["man", "woman", "person", "doctor"], ["a {}", "the {} was kind"])
    return model, tokenizer, weights


def test_wrapped_clip_is_invariant(clip):
    """λ-equitune reading the frozen image tower, over D4 (a smoke test: the matrix has every method, group and dtype)."""
    model, _, weights = clip
    equi = EquiCLIP(model, weights, "d4", "lambda").eval()
    nn.init.normal_(equi.weight_net.net[-1].weight, std=0.5)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert_invariant(equi, x)


def test_clip_logits_are_the_scaled_cosine_with_the_prompt_ensemble(clip):
    model, tokenizer, weights = clip
    assert torch.allclose(weights.norm(dim=0), torch.ones(4), atol=1e-6)
    with torch.no_grad():
        text = model.get_text_features(**tokenizer(["a woman", "the woman was kind"], padding=True, return_tensors="pt"))
        text = getattr(text, "pooler_output", text)
        mean = (text / text.norm(dim=-1, keepdim=True)).mean(0)
        assert torch.allclose(weights[:, 1], mean / mean.norm(), atol=1e-6)
        x = torch.randn(2, 3, 32, 32)
        image = model.get_image_features(pixel_values=x)
        image = getattr(image, "pooler_output", image)
        expected = model.logit_scale.exp() * (image / image.norm(dim=-1, keepdim=True)) @ weights
        assert torch.allclose(CLIPClassifier(model, weights)(x), expected, atol=1e-5)


def test_clip_lambda_net_reads_a_frozen_copy_of_the_image_tower(clip):
    model, _, weights = clip
    equi = EquiCLIP(model.__class__(model.config), weights, "rot90", "lambda").eval()
    nn.init.normal_(equi.weight_net.net[-1].weight)
    x = torch.randn(2, 3, 32, 32)
    before = equi.group_weights(x)
    with torch.no_grad():
        for p in equi.backbone.image_tower_parameters():
            p.add_(0.1 * torch.randn_like(p))
    assert torch.equal(equi.group_weights(x), before)
    assert all(not p.requires_grad for p in equi.frozen_tower.parameters())
    equi.train()
    assert not equi.frozen_tower.training


def test_clip_prompt_sets_are_complete():
    prompts = clip_prompts()
    assert len(prompts["cifar_templates"]) == 18 and len(prompts["imagenet_templates"]) == 80
    assert len(prompts["imagenet_classes"]) == 1000
    # CLIP's cleaned list gives two pairs of ImageNet classes one name each, as in CLIP's notebook
    assert prompts["imagenet_classes"][657] == prompts["imagenet_classes"][744] == "missile"
    assert prompts["imagenet_classes"][836] == prompts["imagenet_classes"][837] == "sunglasses"
    assert len(set(prompts["imagenet_classes"])) == 998
    assert all(t.count("{}") == 1 for t in prompts["cifar_templates"] + prompts["imagenet_templates"])
    assert templates_for("cifar100") == prompts["cifar_templates"]
    assert templates_for("imagenet-v2") == prompts["imagenet_templates"]


def write_cifar100(folder, n_train=16, n_test=8):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        batch = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "fine_labels": list(rng.integers(0, 3, n))}
        (folder / split).write_bytes(pickle.dumps(batch))
    (folder / "meta").write_bytes(pickle.dumps({"fine_label_names": ["apple", "aquarium_fish", "baby"]}))
    return folder


def clip_args(tmp_path, out, *more):
    model_dir = tmp_path / "clip" if (tmp_path / "clip").exists() else save_tiny_clip(tmp_path / "clip")
    data = tmp_path / "cifar-100-python"
    data = data if data.exists() else write_cifar100(data)
    return ["vision", "clip", "--model", str(model_dir), "--data-dir", str(data), "--out", str(out), "--device", "cpu", *more]


def test_clip_command_runs_zero_shot_lambda_stage_and_finetuning_from_a_saved_model(tmp_path, capsys):
    out = tmp_path / "out"
    steps = ["--lambda-steps", "2", "--finetune-steps", "2", "--eval-every", "1", "--batch-size", "4"]
    assert main(clip_args(tmp_path, out, "--methods", "equitune", "lambda", *steps)) == 0
    runs = load_runs(out, "clip").set_index("method")
    assert [p["step"] for p in runs.loc["lambda", "curve"]] == [2, 3, 4]  # zero-shot after the λ-only phase
    assert [p["stage"] for p in runs.loc["lambda", "curve"]] == ["zero-shot", "finetune", "finetune"]
    assert runs.loc["lambda", "zero_shot_top1"] == runs.loc["lambda", "curve"][0]["top1"]
    assert [p["step"] for p in runs.loc["equitune", "curve"]] == [0, 1, 2]  # no λ-net, no λ stage
    assert all(0 <= p["top1"] <= p["top5"] <= 100 for p in runs.loc["lambda", "curve"])
    assert runs.loc["lambda", "config"]["lambda_steps"] == 2 and "device" not in runs.loc["lambda", "config"]
    assert "lambda" in capsys.readouterr().out  # the run prints its report
    assert main(["vision", "report", str(out)]) == 0
    assert "lambda" in capsys.readouterr().out
    assert (out / "clip.png").exists()


def test_an_interrupted_clip_run_resumed_equals_an_uninterrupted_one_bit_for_bit(tmp_path, monkeypatch):
    """Ctrl-C in the step after an evaluation: the rerun starts from that evaluation's checkpoint (weights,
    optimizers and torch's RNG, which the λ-net's dropout draws from) and gives the same curve."""
    steps = ["--methods", "lambda", "--lambda-steps", "2", "--finetune-steps", "4", "--eval-every", "2", "--batch-size", "4"]
    assert main(clip_args(tmp_path, tmp_path / "whole", *steps)) == 0
    generator = torch.get_rng_state()  # (the tiny CLIP's λ-net barely moves: its dropout shows in the generator)

    class Interrupting:  # torch.nn.functional, with Ctrl-C in the 6th training step (step 5 done, not yet saved)
        calls = 0

        def cross_entropy(self, *args, **kwargs):
            self.calls += 1
            if self.calls == 6:
                raise KeyboardInterrupt
            return torch.nn.functional.cross_entropy(*args, **kwargs)

    monkeypatch.setattr(clip_task, "F", Interrupting())
    assert main(clip_args(tmp_path, tmp_path / "cut", *steps)) == 130
    checkpoint = tmp_path / "cut" / "work" / "clip_method=lambda" / "checkpoint"
    assert [p["step"] for p in load_state(checkpoint / "finetune")["curve"]] == [2, 4]
    monkeypatch.setattr(clip_task, "F", torch.nn.functional)
    assert main(clip_args(tmp_path, tmp_path / "cut", *steps)) == 0
    whole, resumed = (load_runs(tmp_path / name, "clip")["curve"][0] for name in ("whole", "cut"))
    assert [p["step"] for p in whole] == [2, 4, 6]
    assert resumed == whole and torch.equal(torch.get_rng_state(), generator)


def test_clip_settings_are_checked_before_anything_loads(tmp_path, capsys):
    assert main(["vision", "clip", "--out", str(tmp_path)]) == 2
    assert "--data-dir" in capsys.readouterr().err
    assert main(clip_args(tmp_path, tmp_path / "out", "--eval-every", "0")) == 2
    assert "eval_every (--eval-every) must be at least 1" in capsys.readouterr().err


# --- data ----------------------------------------------------------------------------------------------


def write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_reader_reads_idx_files_and_names_a_missing_folder(tmp_path):
    images = np.arange(3 * 28 * 28).reshape(3, 28, 28) % 256
    for prefix in ("train", "t10k"):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", np.array([9, 0, 4]))
    data = fashion_mnist("test", tmp_path)
    assert data.images.shape == (3, 1, 28, 28) and data.labels.tolist() == [9, 0, 4]
    assert torch.allclose(data.images[0, 0, 0, :3], (torch.tensor([0.0, 1, 2]) / 255 - 0.5) / 0.5)
    assert data.class_names[9] == "ankle boot"
    assert fashion_mnist("train", tmp_path, size=64).images.shape == (3, 1, 64, 64)
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        find_fashion_mnist(tmp_path / "nowhere")


def test_the_installed_fashion_mnist_has_its_splits():
    try:
        find_fashion_mnist()
    except FileNotFoundError:
        pytest.skip("Debian's dataset-fashion-mnist is not installed here (make setup installs it as root)")
    test = fashion_mnist("test")
    assert test.images.shape == (10_000, 1, 28, 28)
    assert torch.bincount(test.labels).tolist() == [1000] * 10


def test_cifar_and_image_folder_readers(tmp_path):
    data = cifar("cifar100", "test", write_cifar100(tmp_path / "c"))
    assert data.images.shape == (8, 3, 32, 32) and data.class_names == ("apple", "aquarium fish", "baby")
    from PIL import Image

    for label in ("0", "2", "10"):
        (tmp_path / "v2" / label).mkdir(parents=True)
        Image.new("RGB", (5, 4)).save(tmp_path / "v2" / label / "a.jpeg")
    files, labels = image_folder(tmp_path / "v2")
    assert labels.tolist() == [0, 2, 10] and files[2].parent.name == "10"


def test_digits_split_is_fixed_and_disjoint():
    train, test = digits("train"), digits("test")
    assert len(train) + len(test) == 1797 and train.images.shape[1:] == (1, 8, 8)
    assert torch.equal(digits("test").labels, test.labels)


# --- the protocol, end to end on digits -----------------------------------------------------------------

DIGITS = {
    "dataset": "digits",
    "archs": ("resnet18",),
    "seeds": (0,),
    "pretrain_epochs": 4,
    "finetune_images": 96,
    "epochs": 1,
    "eval_images": 150,
}


def digits_config(out, **changes):
    return VisionConfig(**{**DIGITS, **changes, "out": str(out)})


def digits_flags(out, **changes):
    """``equinlp vision run`` with the digits settings (and ``changes``) as flags."""
    flags = []
    for name, value in {**DIGITS, **changes}.items():
        flags += [flag(name), *map(str, value if isinstance(value, tuple) else (value,))]
    return ["vision", "run", *flags, "--out", str(out)]


@pytest.fixture(scope="module")
def digits_pretrained(tmp_path_factory):
    """A folder where the upright ResNet-18 on digits is pre-trained (its stage run once for the module)."""
    out = tmp_path_factory.mktemp("digits")
    torch.set_num_threads(1)
    run_task(VisionTask(), digits_config(out, methods=("base",), epochs=0))
    return out


@pytest.fixture
def digits_out(tmp_path, digits_pretrained):
    """``digits_out(name)``: a fresh folder holding only the pre-trained network (its weights and envelope)."""

    def make(name: str = "out"):
        out = tmp_path / name
        for path in [*digits_pretrained.glob("runs/vision_pretrain_*"), *digits_pretrained.glob("work/vision_pretrain_*")]:
            target = out / path.relative_to(digits_pretrained)
            target.parent.mkdir(parents=True, exist_ok=True)
            (shutil.copytree if path.is_dir() else shutil.copy)(path, target)
        return out

    return make


@pytest.mark.slow
def test_cnn_protocol_runs_every_method_on_digits_then_skips_finished_runs(digits_out, monkeypatch, capsys):
    out = digits_out()
    envelopes = run_task(VisionTask(), digits_config(out))
    by_method = {e["cell"]["method"]: e["metrics"] for e in envelopes}
    assert sorted(by_method) == ["base", "equitune", "equizero", "lambda"]
    assert by_method["base"]["zero_shot"] < 0.6  # upright pre-training does not transfer to rotated digits
    assert by_method["base"]["upright"] > 0.5  # while the pre-trained network reads upright ones
    for metrics in by_method.values():
        assert [p["epoch"] for p in metrics["curve"]] == [0, 1]
    # equitune at epoch 0 averages four copies of the pre-trained net: it must differ from the base
    assert by_method["equitune"]["zero_shot"] != by_method["base"]["zero_shot"]

    def no_training(*args, **kwargs):
        raise AssertionError("finished runs must not train again")

    monkeypatch.setattr(task_module, "train_epoch", no_training)
    assert run_task(VisionTask(), digits_config(out)) == envelopes
    assert main(["vision", "report", str(out)]) == 0
    text = capsys.readouterr().out
    assert "lambda" in text and "resnet18" in text and "t-interval" in text
    assert (out / "vision.png").exists()


@pytest.mark.parametrize("name, value", [("group", "mirror"), ("proxy", "entropy")])
def test_a_rerun_with_another_group_or_proxy_is_refused_naming_it(digits_out, monkeypatch, capsys, name, value):
    """The old run key (dataset, arch, method, seed) left out the group and proxy: a rerun reported the old runs."""
    out = digits_out()
    assert main(digits_flags(out, methods=("equizero",), epochs=0)) == 0
    capsys.readouterr()
    assert main(digits_flags(out, methods=("equizero",), epochs=0, **{name: value})) == 2
    error = capsys.readouterr().err
    assert f"{name}=" in error and f"{value!r} now" in error and "--overwrite" in error

    def no_pretraining(*args, **kwargs):
        raise AssertionError("pre-training does not depend on the group or proxy: it is kept")

    monkeypatch.setattr(VisionTask, "pretrain", no_pretraining)
    assert main([*digits_flags(out, methods=("equizero",), epochs=0, **{name: value}), "--overwrite"]) == 0
    assert load_runs(out, "vision")["config"][0][name] == value


@pytest.mark.slow
def test_every_setting_has_a_flag_and_explicit_flags_beat_quick(tmp_path, capsys):
    for command, config_class in (("run", VisionConfig), ("clip", CLIPConfig)):
        with pytest.raises(SystemExit):
            main(["vision", command, "--help"])
        text = capsys.readouterr().out
        assert [f.name for f in dataclasses.fields(config_class) if flag(f.name) not in text] == []
    # --quick sets one epoch, but --epochs 0 was asked for (QUICK used to be merged over the flags)
    assert main([*digits_flags(tmp_path, methods=("base",), pretrain_epochs=1, pretrain_lr=0.01, epochs=0), "--quick"]) == 0
    (envelope,) = load_runs(tmp_path, "vision").to_dict("records")
    assert [p["epoch"] for p in envelope["curve"]] == [0]
    assert envelope["config"]["pretrain_lr"] == 0.01 and envelope["config"]["finetune_images"] == 96


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("eval_images", 0, "must be at least 1"),  # 0 meant "all" (null in --config now does)
        ("pretrain_epochs", 0, "must be at least 1"),
        ("epochs", -1, "must be at least 0"),
        ("batch_size", 0, "must be at least 1"),
        ("lr", 0, "must be greater than 0"),
    ],
)
def test_numbers_out_of_range_are_one_line_before_anything_loads(tmp_path, capsys, name, value, message):
    assert main(digits_flags(tmp_path, **{name: value})) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and flag(name) in error and message in error
    assert not (tmp_path / "runs").exists()
    assert VisionConfig(eval_images=None).eval_images is None  # all


def interrupt_in(monkeypatch, call: int, batch: int) -> None:
    """Ctrl-C before the ``batch``-th step of the ``call``-th ``train_epoch`` (earlier steps of that epoch done)."""
    real, calls = train_module.train_epoch, []

    def interrupted(model, *args, **kwargs):
        calls.append(None)
        if len(calls) != call:
            return real(model, *args, **kwargs)
        steps = []

        def hook(*_):
            steps.append(None)
            if len(steps) == batch:
                raise KeyboardInterrupt

        handle = model.register_forward_pre_hook(hook)
        try:
            return real(model, *args, **kwargs)
        finally:
            handle.remove()

    monkeypatch.setattr(task_module, "train_epoch", interrupted)


@pytest.mark.slow
def test_an_interrupted_run_resumed_equals_an_uninterrupted_one_bit_for_bit(digits_out, monkeypatch):
    """λ-equitune: the λ pass, epoch 1, then Ctrl-C two steps into epoch 2. The rerun starts from the epoch-1
    checkpoint (weights, optimizer and torch's RNG, which the λ-net's dropout draws from)."""
    config = {"methods": ("lambda",), "epochs": 2}
    (whole,) = run_task(VisionTask(), digits_config(digits_out("whole"), **config))
    cut = digits_out("cut")
    interrupt_in(monkeypatch, call=3, batch=3)
    with pytest.raises(KeyboardInterrupt):
        run_task(VisionTask(), digits_config(cut, **config))
    checkpoint = cut / "work" / "vision_arch=resnet18_method=lambda_seed=0" / "checkpoint"
    assert sorted(p.name for p in checkpoint.iterdir()) == ["finetune", "lambda", "zero_shot.json"]  # the phases
    for phase in ("lambda", "finetune"):
        assert sorted(p.name for p in (checkpoint / phase).iterdir()) == ["state.json", "tensors.safetensors"]  # no pickle
    assert [p["epoch"] for p in load_state(checkpoint / "finetune")["curve"]] == [0, 1]
    assert not [p for p in cut.rglob("*") if p.suffix in (".pt", ".pkl", ".bin")]
    monkeypatch.setattr(task_module, "train_epoch", train_module.train_epoch)
    (resumed,) = run_task(VisionTask(), digits_config(cut, **config))
    assert resumed["metrics"] == whole["metrics"]  # every accuracy and training loss, bit for bit
    assert not checkpoint.exists()


@pytest.mark.slow
def test_interrupted_pretraining_resumes_to_the_same_weights(tmp_path, digits_pretrained, monkeypatch):
    interrupt_in(monkeypatch, call=3, batch=2)  # two epochs done, the third one step in
    with pytest.raises(KeyboardInterrupt):
        run_task(VisionTask(), digits_config(tmp_path, methods=("base",), epochs=0))
    work = "work/vision_pretrain_arch=resnet18"
    assert len(load_state(tmp_path / work / "checkpoint")["losses"]) == 2
    monkeypatch.setattr(task_module, "train_epoch", train_module.train_epoch)
    run_task(VisionTask(), digits_config(tmp_path, methods=("base",), epochs=0))
    resumed, whole = load_state(tmp_path / work / "weights"), load_state(digits_pretrained / work / "weights")
    assert resumed.keys() == whole.keys() and all(torch.equal(resumed[k], whole[k]) for k in whole)
    pretrain = [load_runs(out, "vision", "pretrain")["losses"][0] for out in (tmp_path, digits_pretrained)]
    assert pretrain[0] == pretrain[1]


@pytest.mark.slow
def test_clip_command_reads_an_imagenet_v2_folder_with_clips_1000_class_names(tmp_path, capsys):
    from PIL import Image

    model_dir = save_tiny_clip(tmp_path / "clip")
    rng = np.random.default_rng(0)
    for label in ("0", "5", "999"):
        (tmp_path / "v2" / label).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)).save(tmp_path / "v2" / label / "0.jpeg")
    out = tmp_path / "out"
    args = ["vision", "clip", "--model", str(model_dir), "--dataset", "imagenet-v2", "--data-dir", str(tmp_path / "v2")]
    assert main([*args, "--methods", "equizero", "--group", "d4", "--out", str(out), "--device", "cpu"]) == 0
    (run,) = load_runs(out, "clip").to_dict("records")
    assert run["config"]["group"] == "d4" and run["curve"][0]["step"] == 0
    assert "equizero" in capsys.readouterr().out
    assert main([*args, "--finetune-steps", "1", "--out", str(out)]) == 2
    assert "test set only" in capsys.readouterr().err


def test_the_lambda_only_stage_leaves_the_frozen_backbone_and_its_batch_norm_untouched():
    model = wrap(build_cnn("resnet18", 10, 1), "rot90", "lambda")
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    data = digits("train", size=16).subset(64)
    optimizer = torch.optim.Adam(model.weight_net.parameters(), lr=1e-2)
    train_module.train_epoch(
        model, model.weight_net.parameters(), optimizer, data, model.transform, 0, 32, train_mode=model.weight_net
    )
    after = model.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and running statistics alike
    assert model.weight_net.net[-1].weight.abs().sum() > 0  # while the λ-net did learn


def test_missing_fashion_mnist_is_one_line_from_the_cli(tmp_path, capsys):
    """No data set where the run looks: one line naming where it looked and how to get it, exit 2, no traceback."""
    from equinlp.cli import main

    assert main(["vision", "run", "--quick", "--data-dir", str(tmp_path / "none"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("equinlp: error: Fashion-MNIST not found in") and err.count("\n") == 1
