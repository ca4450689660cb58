import json
import re

import pytest
import torch
from torch import nn

from helpers import train
from helpers.train import Config, History


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
])
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=rf"Config\.{field}=.*allowed"):
        Config(**{field: value})


def test_config_defaults_are_valid():
    Config()
    Config(optimizer="adam", scheduler="onecycle", degrees=7, translate=0.1, scale=0.1)


def fake_history(accs):
    h = History(config={}, params=123, device="cpu")
    for a in accs:
        for name in ("lr", "train_loss", "train_acc", "test_loss", "seconds"):
            getattr(h, name).append(1.0)
        h.test_acc.append(a)
        h.test_correct.append(int(a * 100))
    return h


def test_history_derived_values():
    h = fake_history([98.0, 99.45, 99.41, 99.38, 99.40])
    assert h.best_test_acc == 99.45 and h.best_epoch == 2
    assert h.last3_min == 99.38
    assert h.epochs_at_target == [2, 3, 5]
    assert h.last_test_acc == 99.40


def test_history_json_round_trip(tmp_path):
    h = fake_history([97.0, 99.0])
    path = h.save(tmp_path / "sub" / "h.json")
    assert History.load(path) == h
    assert json.loads(path.read_text())["summary"]["best_epoch"] == 2


def test_onecycle_steps_every_batch_and_step_every_epoch():
    model = nn.Linear(2, 2)
    opt = train.make_optimizer(model, Config(scheduler="onecycle", epochs=2, max_lr=0.1))
    scheduler, per_batch = train.make_scheduler(opt, Config(scheduler="onecycle", epochs=2, max_lr=0.1), 10)
    assert per_batch and isinstance(scheduler, torch.optim.lr_scheduler.OneCycleLR)
    scheduler, per_batch = train.make_scheduler(opt, Config(scheduler="step"), 10)
    assert not per_batch and isinstance(scheduler, torch.optim.lr_scheduler.StepLR)
    assert train.make_scheduler(opt, Config(), 10) == (None, False)


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
    assert train.save_run(model, history, "99_test") is None, "nothing to echo in a notebook"
    assert not (tmp_path / "project").exists()
    base = train.output_base(smoke=True)
    reloaded = tiny_net()
    reloaded.load_state_dict(torch.load(base / "models" / "99_test.pt"))
    assert History.load(base / "results" / "99_test.json").test_acc == history.test_acc
    assert str(tmp_path) not in capsys.readouterr().out


def test_save_run_writes_under_the_project_root(mnist_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MNIST8K_ROOT", str(tmp_path))
    model, history = nn.Linear(1, 1), fake_history([99.0])
    train.save_run(model, history, "99_test")
    assert History.load(tmp_path / "results" / "99_test.json") == history
    assert (tmp_path / "models" / "99_test.pt").exists()
    assert "Saved results/99_test.json and models/99_test.pt" in capsys.readouterr().out


def test_load_weights_reads_what_save_run_wrote(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MNIST8K_ROOT", str(tmp_path))
    saved = nn.Linear(3, 2)
    train.save_run(saved, fake_history([99.0]), "99_test")
    loaded = train.load_weights(nn.Linear(3, 2), "99_test")
    assert torch.equal(loaded.weight, saved.weight) and not loaded.training
    with pytest.raises(FileNotFoundError, match=r"run that step first \(make journey STEPS=98\)"):
        train.load_weights(nn.Linear(3, 2), "98_missing")


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

    config = Config(epochs=1, batch_size=64, optimizer="adam", lr=0.003, seed=0)
    results = []
    for loaders in (None, (data.reference_loader(True, 64), data.reference_loader(False, 1_000))):
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


def test_seed_summary_and_table():
    histories = [fake_history([99.0, 99.5, 99.45, 99.41]), fake_history([99.2, 99.3, 99.42, 99.38])]
    histories[0].config, histories[1].config = {"seed": 1}, {"seed": 2}
    summary = train.seed_summary(histories)
    assert [r["last3_min"] for r in summary["rows"]] == [99.41, 99.3]
    assert [r["epochs_at_target"] for r in summary["rows"]] == [3, 1]
    assert summary["stats"]["best"]["mean"] == pytest.approx(99.46)
    assert summary["stats"]["last3_min"]["min"] == pytest.approx(99.3)
    assert not summary["all_last3_at_target"]
    table = train.format_seed_table(summary)
    assert "mean" in table and "99.41" in table


def test_seed_runs_print_one_line_each_and_store_every_history(mnist_root, smoke, capsys, tmp_path):
    histories = train.fit_seeds(tiny_net, Config(batch_size=64, seed=0), seeds=[3, 4], device=torch.device("cpu"))
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["seed 3", "seed 4"]
    assert f"worst of last 3 {histories[0].last3_min:.2f} %" in lines[0]
    assert [h.config["seed"] for h in histories] == [3, 4] and histories[0].test_acc != histories[1].test_acc
    train.save_seeds(histories, "99_seeds_test")
    record = json.loads((train.output_base(smoke=True) / "results" / "99_seeds_test.json").read_text())
    assert [History(**h).test_acc for h in record["histories"]] == [h.test_acc for h in histories]
    assert [r["seed"] for r in record["rows"]] == [3, 4]
