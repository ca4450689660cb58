"""helpers.records: where runs go, what a run records, and the seed statistic."""

import json

import pytest
import torch
from torch import nn

from helpers import records
from helpers._machinery import paths
from helpers.records import History, SeedStats


def test_project_root_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(records.ROOT_ENV, str(tmp_path))
    assert records.project_root() == tmp_path.resolve()


def test_project_root_is_found_from_a_subfolder(tmp_path, monkeypatch):
    """A notebook opened from notebooks/ writes to the clone it sits in, not to notebooks/."""
    monkeypatch.delenv(records.ROOT_ENV, raising=False)
    (tmp_path / "pyproject.toml").write_text(f'[project]\nname = "{paths.PROJECT_NAME}"\n')
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    assert records.project_root() == tmp_path.resolve()
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "another-project"\n')
    assert records.project_root() == (tmp_path / "notebooks").resolve(), "no marker: the working directory"


def test_write_json_replaces_a_record_whole(tmp_path):
    path = records.write_json(tmp_path / "a" / "r.json", {"x": 1})
    records.write_json(path, {"x": 2})
    assert path.read_text() == '{\n "x": 2\n}\n'
    assert [p.name for p in path.parent.iterdir()] == ["r.json"], "no temporary file left behind"


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
    assert h.worst_of_last3 == 99.38
    assert h.epochs_at_target == [2, 3, 5]
    assert h.last_test_acc == 99.40


def test_history_json_round_trip(tmp_path):
    h = fake_history([97.0, 99.0])
    path = h.save(tmp_path / "sub" / "h.json")
    assert History.load(path) == h
    assert json.loads(path.read_text())["summary"]["best_epoch"] == 2




def seed_runs(*test_accs):
    """Histories on seeds 1, 2, ... with these test accuracies."""
    histories = [fake_history(accs) for accs in test_accs]
    for seed, h in enumerate(histories, 1):
        h.config = {"seed": seed}
    return histories


def test_seed_stats_read_the_same_from_histories_records_and_tables():
    histories = seed_runs([99.0, 99.5, 99.45, 99.41], [99.2, 99.3, 99.42, 99.38], [99.6, 99.5, 99.5, 99.5])
    from_histories = SeedStats.of_histories(histories)
    assert from_histories.worst == {1: 99.41, 2: 99.3, 3: 99.5}
    assert from_histories.mean == pytest.approx((99.41 + 99.3 + 99.5) / 3)
    assert from_histories.std == pytest.approx(0.10017, abs=1e-5)  # n - 1 in the denominator
    assert (from_histories.lowest, from_histories.highest, from_histories.n) == (99.3, 99.5, 3)
    assert from_histories.at_target == 2 and not from_histories.all_at_target and from_histories.misses == {2: 99.3}
    assert SeedStats.of_records([h.fields() for h in reversed(histories)]) == from_histories, "sorted by seed"
    assert SeedStats.of_table(records.seed_summary(histories)) == from_histories


def test_a_seed_counts_once():
    with pytest.raises(ValueError, match="repeat"):
        SeedStats.of_histories(seed_runs([99.5] * 3) * 2)


def test_the_seed_table_prints_each_seed_and_the_mean_and_std():
    summary = records.seed_summary(seed_runs([99.0, 99.5, 99.45, 99.41], [99.2, 99.3, 99.42, 99.38]))
    assert [r["last3_min"] for r in summary["rows"]] == [99.41, 99.3]
    assert [r["epochs_at_target"] for r in summary["rows"]] == [3, 1]
    assert summary["stats"]["best"]["mean"] == pytest.approx(99.46) and not summary["all_last3_at_target"]
    lines = records.format_seed_table(summary).splitlines()
    assert lines[1].split() == ["1", "99.50", "99.41", "99.41", "3"]
    assert lines[-2].split() == ["mean", "99.46", "99.39", "99.35", "2.0"]
    assert lines[-1].split() == ["std", "0.06", "0.02", "0.08", "1.4"]


def test_a_history_with_averaging_stores_the_raw_accuracy_and_others_do_not(tmp_path):
    plain = fake_history([99.0, 99.1])
    assert "raw_test_acc" not in json.loads(plain.save(tmp_path / "a.json").read_text())
    averaged = fake_history([99.0, 99.1])
    averaged.raw_test_acc = [98.9, 99.0]
    assert History.load(averaged.save(tmp_path / "b.json")).raw_test_acc == [98.9, 99.0]


def test_the_raw_weights_are_scored_like_the_average_and_paired_with_it_seed_by_seed():
    averaged = seed_runs([99.3, 99.5, 99.45, 99.48], [99.2, 99.44, 99.42, 99.5])
    averaged[0].raw_test_acc = [99.1, 99.6, 99.3, 99.5]   # its worst of the last 3: 99.3, not the average's 99.45
    averaged[1].raw_test_acc = [99.0, 99.2, 99.46, 99.41]
    raw = SeedStats.of_raw_weights(averaged)
    assert raw.worst == {1: 99.3, 2: 99.2} and raw.at_target == 0
    assert SeedStats.of_histories(averaged).paired(raw).differences == pytest.approx([0.15, 0.22])
    plain = seed_runs([99.5] * 3)
    with pytest.raises(ValueError, match=r"seed\(s\) \[1\] were trained without weight averaging.*Config\(ema_decay=0.999\)"):
        SeedStats.of_raw_weights(plain)


def test_save_run_writes_under_the_project_root(mnist_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MNIST8K_ROOT", str(tmp_path))
    model, history = nn.Linear(1, 1), fake_history([99.0])
    records.save_run(model, history, "99_test")
    assert History.load(tmp_path / "results" / "99_test.json") == history
    assert (tmp_path / "models" / "99_test.pt").exists()
    assert "Saved results/99_test.json and models/99_test.pt" in capsys.readouterr().out


def test_load_weights_reads_what_save_run_wrote(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MNIST8K_ROOT", str(tmp_path))
    saved = nn.Linear(3, 2)
    records.save_run(saved, fake_history([99.0]), "99_test")
    loaded = records.load_weights(nn.Linear(3, 2), "99_test")
    assert torch.equal(loaded.weight, saved.weight) and not loaded.training
    with pytest.raises(FileNotFoundError, match=r"run that step first \(make journey STEPS=98\)"):
        records.load_weights(nn.Linear(3, 2), "98_missing")




def test_a_paired_difference_and_its_t_interval_by_hand():
    """Seeds 1-3 on both sides: differences 0.10, 0.20, 0.15 -> mean 0.15, sd 0.05, and with 2 degrees of freedom
    t = 4.303 (a table's value), so the half-width is 4.303 * 0.05 / sqrt(3) = 0.1242."""
    before = SeedStats({1: 99.30, 2: 99.20, 3: 99.25, 4: 99.9})
    after = SeedStats({1: 99.40, 2: 99.40, 3: 99.40})
    paired = after.paired(before)
    assert paired.seeds == [1, 2, 3], "only the seeds both sides ran"
    assert paired.mean == pytest.approx(0.15) and paired.high - paired.mean == pytest.approx(0.1242, abs=1e-4)
    assert paired.shown and str(paired).startswith("+0.15 points (95 % interval +0.03 to +0.27; shown)")
    same_luck = SeedStats({1: 99.31, 2: 99.19, 3: 99.26}).paired(before)
    assert not same_luck.shown and "not shown with 3 seeds" in str(same_luck)
    with pytest.raises(ValueError, match="2\\+ seeds"):
        SeedStats({4: 99.5}).paired(before)


def test_the_paired_table_lists_each_seed_then_the_interval():
    paired = SeedStats({1: 99.40, 2: 99.40, 3: 99.40}).paired(SeedStats({1: 99.30, 2: 99.20, 3: 99.25}))
    lines = paired.table("step a", "step b").splitlines()
    assert lines[1].split() == ["seed", "step", "a", "step", "b", "difference"]
    assert lines[3].split() == ["2", "99.20", "99.40", "+0.20"]
    assert lines[-1] == f"mean difference {paired}"


def test_recorded_seeds_and_histories_come_from_the_project_record(tmp_path, monkeypatch):
    monkeypatch.setenv(records.ROOT_ENV, str(tmp_path))
    histories = []
    for seed, accs in ((1, [98.0, 99.1, 99.2, 99.3]), (2, [98.5, 99.0, 99.4, 99.2])):
        h = fake_history(accs)
        h.config = {"seed": seed}
        histories.append(h)
    summary = records.seed_summary(histories)
    records.write_json(tmp_path / "results" / "99_seeds.json", summary | {"histories": [h.fields() for h in histories]})
    assert records.recorded_seeds("99_seeds").worst == {1: 99.1, 2: 99.0}
    assert [h.test_acc for h in records.recorded_histories("99_seeds", [2])] == [[98.5, 99.0, 99.4, 99.2]]
    with pytest.raises(ValueError, match=r"no run for seed\(s\) \[3\].*TRAIN_SEEDS = True"):
        records.recorded_histories("99_seeds", [2, 3])
    with pytest.raises(FileNotFoundError, match="make journey STEPS=98"):
        records.recorded_seeds("98_missing")
