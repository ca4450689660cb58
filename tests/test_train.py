import dataclasses
import json
import re

import pytest
import torch
from torch import nn

from helpers import records, train
from helpers.records import History
from helpers.train import Config


def tiny_net():
    return nn.Sequential(
        nn.Conv2d(1, 16, 3), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),    # 13
        nn.Conv2d(16, 32, 3), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),   # 5
        nn.Flatten(), nn.Linear(32 * 5 * 5, 10),
    )


@pytest.mark.parametrize("field, value", [
    ("epochs", 0), ("epochs", 2.5), ("batch_size", 0), ("optimizer", "rmsprop"), ("lr", 0.0), ("lr", -1.0),
    ("momentum", 1.0), ("scheduler", "cosine"), ("step_size", 0), ("gamma", 0.0), ("max_lr", float("nan")),
    ("pct_start", 1.0), ("degrees", -5.0), ("translate", 0.9), ("scale", 0.5), ("seed", -1), ("epochs", True),
    ("div_factor", 0.5), ("final_div_factor", 0), ("label_smoothing", 1.0), ("label_smoothing", -0.1),
    ("clip_grad_norm", -1.0), ("ema_decay", 1.0), ("ema_decay", 0.2), ("ema_decay", True),
])
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=rf"Config\.{field}=.*allowed"):
        Config(**{field: value})


def test_config_defaults_are_valid():
    Config()
    Config(optimizer="adam", scheduler="onecycle", degrees=7, translate=0.1, scale=0.1)


from tests.test_records import fake_history  # noqa: E402


@pytest.mark.parametrize("scheduler, moves_per_batch, moves_per_epoch", [
    ("onecycle", True, False), ("step", False, True), ("none", False, False)])
def test_the_schedule_moves_the_lr_when_its_kind_says(scheduler, moves_per_batch, moves_per_epoch):
    """One-cycle changes the lr after every batch and never at an epoch's end; StepLR the other way round."""
    config = Config(scheduler=scheduler, epochs=3, step_size=1, gamma=0.5, max_lr=0.1)
    optimizer = train.make_optimizer(nn.Linear(2, 2), config)
    schedule = train.LrSchedule(optimizer, config, steps_per_epoch=10)
    before = schedule.lr
    optimizer.step()
    schedule.after_batch()
    assert (schedule.lr != before) == moves_per_batch
    before = schedule.lr
    schedule.after_epoch()
    assert (schedule.lr != before) == moves_per_epoch


def test_the_planned_schedule_is_the_one_training_follows(mnist_root, smoke):
    """LrSchedule.plan (what the CUDA graph reads) gives, epoch by epoch, the lr that fit records."""
    config = Config(epochs=1, batch_size=64, optimizer="adam", scheduler="onecycle", max_lr=0.02, seed=0)
    train.set_seed(0)
    history = train.fit(tiny_net(), config, device=torch.device("cpu"), progress=False, quiet=True)
    lrs, beta1s = train.planned_schedule(config, steps_per_epoch=2_000 // 64 + 1)
    assert history.lr == [lrs[0]] and lrs[0] == pytest.approx(0.02 / 25) and beta1s[0] == pytest.approx(0.95)


def run_smoke_fit(**config):
    train.set_seed(0)
    model = tiny_net()
    return model, train.fit(model, Config(epochs=3, batch_size=32, lr=0.05, seed=0, **config), device=torch.device("cpu"),
                            progress=False)


def test_smoke_fit_learns(mnist_root, smoke):
    _, history = run_smoke_fit()
    assert history.epochs == 1, "smoke mode trains a single epoch"
    assert history.smoke and history.params == (16*9 + 16) + 32 + (16*32*9 + 32) + 64 + (800*10 + 10)
    assert history.test_acc[0] > 60.0, "clearly better than chance (10 %)"
    assert history.test_correct[0] == round(history.test_acc[0] * 10)  # 1,000 test images


def test_same_seed_same_history_on_cpu(mnist_root, smoke):
    _, first = run_smoke_fit(degrees=10, translate=0.1, scheduler="onecycle", max_lr=0.1)
    _, second = run_smoke_fit(degrees=10, translate=0.1, scheduler="onecycle", max_lr=0.1)
    same = lambda h: (h.train_loss, h.train_acc, h.test_loss, h.test_acc, h.lr)  # noqa: E731
    assert same(first) == same(second)


def test_different_seed_different_history(mnist_root, smoke):
    train.set_seed(0)
    a = train.fit(tiny_net(), Config(seed=0), device=torch.device("cpu"), progress=False)
    train.set_seed(1)
    b = train.fit(tiny_net(), Config(seed=1), device=torch.device("cpu"), progress=False)
    assert a.train_loss != b.train_loss


def test_save_run_in_smoke_mode_leaves_the_project_alone(mnist_root, smoke, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MNIST8K_ROOT", str(tmp_path / "project"))
    monkeypatch.setenv("MNIST8K_DATA", str(mnist_root))  # the data stay where they are
    model, history = run_smoke_fit()
    assert records.save_run(model, history, "99_test") is None, "nothing to echo in a notebook"
    assert not (tmp_path / "project").exists()
    base = records.output_base(smoke=True)
    reloaded = tiny_net()
    reloaded.load_state_dict(torch.load(base / "models" / "99_test.pt"))
    assert History.load(base / "results" / "99_test.json").test_acc == history.test_acc
    assert str(tmp_path) not in capsys.readouterr().out


@pytest.mark.parametrize("config, shown, hidden", [
    (Config(optimizer="adam", scheduler="onecycle", max_lr=0.02, degrees=7),
     ["optimizer='adam'", "max_lr=0.02", "pct_start=0.3", "degrees=7"],
     ["momentum", "lr=", "step_size", "gamma", "translate", "scale", "weight_decay"]),
    (Config(optimizer="sgd", lr=0.05),
     ["lr=0.05", "momentum=0.9"], ["max_lr", "pct_start", "step_size", "gamma", "degrees"]),
    (Config(optimizer="sgd", scheduler="step", step_size=4, gamma=0.5, weight_decay=1e-4),
     ["step_size=4", "gamma=0.5", "weight_decay=0.0001", "lr=0.01"], ["max_lr", "pct_start"]),
])
def test_config_prints_only_the_fields_that_apply(config, shown, hidden):
    text = str(config)
    for piece in shown:
        assert piece in text, (piece, text)
    for piece in hidden:  # a whole name: "lr=" is not found inside "max_lr="
        assert re.search(rf"(?<!\w){re.escape(piece)}", text) is None, (piece, text)


def test_fit_learns_the_same_from_the_reference_pipeline(mnist_root, smoke):
    """Same weights, same images in the same order, no augmentation: the fast loader and torchvision's
    pipeline must give the same first-epoch loss (float32 sums in another order: within 1e-5)."""
    from helpers import data
    from tools.bench import reference_loader

    config = Config(epochs=1, batch_size=64, optimizer="adam", lr=0.003, seed=0)
    results = []
    for loaders in (None, (reference_loader(True, 64), reference_loader(False, 1_000))):
        train.set_seed(0)
        model = tiny_net()
        if loaders is None:  # the fast loader, unshuffled like the reference above
            loaders = (data.FastLoader(*data.load_mnist(True), 64), data.FastLoader(*data.load_mnist(False), 1_000))
        results.append(train.fit(model, config, device=torch.device("cpu"), progress=False, loaders=loaders))
    fast, reference = results
    assert fast.train_loss[0] == pytest.approx(reference.train_loss[0], rel=1e-5)
    assert fast.test_loss[0] == pytest.approx(reference.test_loss[0], rel=1e-5)
    assert fast.test_correct == reference.test_correct
    assert fast.train_loss[0] < 2.0, "it learned something (chance is ln 10 = 2.30)"


def test_fit_records_a_clean_train_accuracy(mnist_root, smoke):
    """Measured in eval mode on unaugmented images: differs from the running one, which dropout and rotation see."""
    _, history = run_smoke_fit(degrees=30)
    assert len(history.clean_train_acc) == history.epochs == 1
    assert history.clean_train_acc[0] != history.train_acc[0]
    assert 10 < history.clean_train_acc[0] <= 100


def test_fit_names_its_device_and_the_malloc_setting(mnist_root, smoke, capsys):
    run_smoke_fit()
    out = capsys.readouterr().out
    assert "Device: cpu" in out
    import platform
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert "malloc keeps freed memory" in out


def test_choose_device_falls_back_to_cpu(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert train.choose_device().type == "cpu"
    assert "cpu" in capsys.readouterr().out


def test_seed_runs_print_one_line_each_and_store_every_history(mnist_root, smoke, capsys, tmp_path):
    histories = train.fit_seeds(tiny_net, Config(batch_size=64, seed=0), seeds=[3, 4], device=torch.device("cpu"))
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["seed 3", "seed 4"]
    assert f"worst of last 3 {histories[0].worst_of_last3:.2f} %" in lines[0]
    assert [h.config["seed"] for h in histories] == [3, 4] and histories[0].test_acc != histories[1].test_acc
    records.save_seeds(histories, "99_seeds_test")
    record = json.loads((records.output_base(smoke=True) / "results" / "99_seeds_test.json").read_text())
    assert [History(**h).test_acc for h in record["histories"]] == [h.test_acc for h in histories]
    assert [r["seed"] for r in record["rows"]] == [3, 4]


def test_weight_averaging_tests_the_average_and_keeps_it(mnist_root, smoke):
    """With ema_decay the test accuracy is the average's, the raw weights' is recorded beside it, training
    itself is untouched (the same raw weights as without averaging), and the model ends as the average."""
    plain_model, plain = run_smoke_fit()
    averaged_model, averaged = run_smoke_fit(ema_decay=0.9)
    assert averaged.raw_test_acc == plain.test_acc and plain.raw_test_acc == []
    assert averaged.test_acc != averaged.raw_test_acc
    assert not torch.equal(averaged_model[0].weight, plain_model[0].weight), "the model holds the average now"
    assert not torch.equal(averaged_model[1].running_mean, plain_model[1].running_mean), "BatchNorm's too"


def test_label_smoothing_and_clipping_change_training(mnist_root, smoke):
    _, plain = run_smoke_fit()
    _, smoothed = run_smoke_fit(label_smoothing=0.1)
    _, clipped = run_smoke_fit(clip_grad_norm=0.01)
    assert smoothed.train_loss[0] > plain.train_loss[0], "a softer target never reaches zero loss"
    assert clipped.train_loss != plain.train_loss


def test_clipping_bounds_every_step(monkeypatch):
    """clip_grad_norm: no gradient the optimizer sees is longer than the bound."""
    seen = []
    model = nn.Linear(4, 10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    original = optimizer.step
    monkeypatch.setattr(optimizer, "step", lambda: (seen.append(torch.cat([p.grad.flatten() for p in model.parameters()])
                                                                .norm().item()), original()))
    batches = [(torch.randn(8, 4) * 100, torch.randint(0, 10, (8,))) for _ in range(3)]
    train.train_one_epoch(model, batches, optimizer, progress=False, clip_grad_norm=0.5)
    assert len(seen) == 3 and max(seen) <= 0.5 + 1e-6


def test_fit_measures_extra_sets_each_epoch(mnist_root, smoke):
    """The held-out check goes through fit: a loader passed in ``measure`` gets an accuracy per epoch."""
    from helpers import data

    images, labels = data.load_mnist(True)
    held_out = data.FastLoader(images[:500], labels[:500], 250)
    train.set_seed(0)
    model = tiny_net()
    history = train.fit(model, Config(batch_size=64, seed=0), device=torch.device("cpu"), progress=False,
                        quiet=True, measure={"held_out": held_out})
    assert list(history.extra_acc) == ["held_out"] and len(history.extra_acc["held_out"]) == history.epochs
    assert history.extra_acc["held_out"][-1] == train.accuracy(model, held_out) > 10


def test_the_average_is_the_exponential_moving_average_of_every_step(monkeypatch):
    """Computed by hand from the weights after each step: the first step's weights, then
    average = decay * average + (1 - decay) * weights after every further step."""
    model = nn.Linear(4, 10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    after_each_step = []
    original = optimizer.step
    monkeypatch.setattr(optimizer, "step", lambda: (original(), after_each_step.append(model.weight.detach().clone())))
    averaged = train.average_of(model, decay=0.9)
    batches = [(torch.randn(8, 4), torch.randint(0, 10, (8,))) for _ in range(5)]
    train.train_one_epoch(model, batches, optimizer, progress=False, averaged=averaged)
    by_hand = after_each_step[0]
    for weights in after_each_step[1:]:
        by_hand = 0.9 * by_hand + 0.1 * weights
    assert torch.allclose(averaged.module.weight, by_hand, atol=1e-6)
    assert not torch.allclose(averaged.module.weight, model.weight, atol=1e-4), "the average lags the weights"


def test_seed_runs_read_from_the_record_say_so_and_match_what_was_trained(mnist_root, smoke, capsys, tmp_path,
                                                                          monkeypatch):
    """The CPU learner's switch: the recorded runs come back as they were trained, the notebook says where
    from, a changed network is refused, and MNIST8K_SEEDS=train trains them anyway."""
    monkeypatch.setenv(records.ROOT_ENV, str(tmp_path))
    monkeypatch.delenv(train.SEEDS_ENV, raising=False)
    config = Config(batch_size=64, seed=0)
    trained = train.fit_seeds(tiny_net, config, seeds=[3, 4], device=torch.device("cpu"))
    record = records.seed_summary(trained) | {"histories": [h.fields() for h in trained]}
    records.write_json(tmp_path / "results" / "99_seeds.json", record)
    capsys.readouterr()
    read = train.fit_seeds(tiny_net, config, seeds=[4], recorded="99_seeds")
    out = capsys.readouterr().out
    assert "recorded runs, read from results/99_seeds.json, not trained here" in out
    assert read[0].test_acc == trained[1].test_acc and out.count("seed 4: best") == 1
    with pytest.raises(ValueError, match="max_lr differ.*TRAIN_SEEDS = True"):
        train.fit_seeds(tiny_net, dataclasses.replace(config, max_lr=0.5), seeds=[4], recorded="99_seeds")
    monkeypatch.setenv(train.SEEDS_ENV, "train")
    again = train.fit_seeds(tiny_net, config, seeds=[4], recorded="99_seeds", device=torch.device("cpu"))
    assert "MNIST8K_SEEDS=train: training" in capsys.readouterr().out and again[0].test_acc == trained[1].test_acc
    monkeypatch.setenv(train.SEEDS_ENV, "yes")
    with pytest.raises(ValueError, match="MNIST8K_SEEDS='yes'.*SEEDS=train"):
        train.fit_seeds(tiny_net, config, seeds=[4], recorded="99_seeds")
