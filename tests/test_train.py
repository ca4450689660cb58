import dataclasses
import json

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


def test_save_run_in_smoke_mode_leaves_the_repo_alone(mnist_root, smoke, tmp_path):
    model, history = run_smoke_fit()
    results, weights = train.save_run(model, history, "99_test")
    assert train.REPO_ROOT not in results.parents and train.REPO_ROOT not in weights.parents
    state = torch.load(weights)
    reloaded = tiny_net()
    reloaded.load_state_dict(state)
    assert History.load(results).test_acc == history.test_acc


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
