"""The design search: architecture strings build the networks they name, runs are recorded and resumed."""

import json

import pytest
import torch

from helpers.summary import count_parameters, receptive_field_table
from tools import search


def test_the_ablation_builds_a_network_without_batchnorm():
    plain = search.build_candidate(search.candidate("c8 p c12 h", batchnorm=False))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    assert count_parameters(plain) == (72 + 8) + (864 + 12) + 120  # biases instead of BN's 2 per channel
    assert search.parameters(search.candidate("c8 p c12 h", batchnorm=False)) == count_parameters(plain)
    assert search.key(search.candidate("c8 h", batchnorm=False, scheduler="none")) == "c8-h_scheduler=none_batchnorm=False"


def test_the_held_out_check_never_trains_on_what_it_measures(tmp_path, mnist_root, smoke, monkeypatch, capsys):
    monkeypatch.setitem(search.STAGES, 99, [search.candidate("c4 p c8 h")])
    assert search.main(["--stage", "99", "--seeds", "1", "--out", str(tmp_path), "--held-out"]) == 0
    record = json.loads((tmp_path / "held_out" / "c4-p-c8-h__seed1.json").read_text())
    assert record["train_images"] + record["held_out_images"] == 2_000  # smoke mode: the first 2,000 images
    assert record["held_out_images"] == 400 and len(record["held_out_acc"]) == len(record["test_acc"]) == 1
    assert "held out" in capsys.readouterr().out
    assert not list(tmp_path.glob("*.json")), "no ordinary search record"


def test_key_names_what_differs_from_the_base_recipe():
    assert search.key(search.candidate("c8 p c12 h")) == "c8-p-c12-h"
    assert search.key(search.candidate("c8 p c12 h", max_lr=0.05, batch_size=64)) == "c8-p-c12-h_batch_size=64_max_lr=0.05"
    with pytest.raises(ValueError, match="unknown recipe"):
        search.candidate("c8 h", lr_peak=0.1)


def test_a_search_records_each_run_and_resumes(tmp_path, mnist_root, smoke, monkeypatch, capsys):
    monkeypatch.setitem(search.STAGES, 99, [search.candidate("c4 p c8 h"), search.candidate("c4 p c8 h", degrees=0.0)])
    args = ["--stage", "99", "--seeds", "1", "2", "--out", str(tmp_path)]
    assert search.main(args) == 0
    records = sorted(p.name for p in tmp_path.glob("*.json"))
    assert records == ["c4-p-c8-h__seed1.json", "c4-p-c8-h__seed2.json",
                       "c4-p-c8-h_degrees=0__seed1.json", "c4-p-c8-h_degrees=0__seed2.json"]
    capsys.readouterr()
    assert search.main(args) == 0
    assert "===" not in capsys.readouterr().out, "a recorded run is not trained again"
    record = json.loads((tmp_path / records[0]).read_text())
    assert record["candidate"]["arch"] == "c4 p c8 h" and record["config"]["seed"] == 1
    table = search.summary_table(tmp_path)
    assert "c4-p-c8-h_degrees=0" in table and table.count("\n") == 2


def test_workers_split_the_runs_between_them(tmp_path, mnist_root, smoke, monkeypatch):
    monkeypatch.setitem(search.STAGES, 99, [search.candidate("c4 p c8 h")])
    search.main(["--stage", "99", "--seeds", "1", "2", "3", "--out", str(tmp_path), "--worker", "1", "--workers", "2"])
    assert sorted(p.name for p in tmp_path.glob("*.json")) == ["c4-p-c8-h__seed2.json"]


def test_only_trains_the_named_designs_of_a_stage_and_rejects_unknown_ones(tmp_path, mnist_root, smoke, monkeypatch, capsys):
    monkeypatch.setitem(search.STAGES, 99, [search.candidate("c4 p c8 h"), search.candidate("c4 p c6 h")])
    assert search.main(["--stage", "99", "--only", "c4 p c6 h", "--seeds", "7", "--out", str(tmp_path)]) == 0
    assert [p.name for p in tmp_path.glob("*.json")] == ["c4-p-c6-h__seed7.json"]
    assert search.main(["--stage", "99", "--only", "c4 p c7 h", "--out", str(tmp_path)]) == 2
    assert "c4 p c7 h" in capsys.readouterr().err


def test_each_ablation_takes_one_idea_away_from_the_final():
    cand = search.candidate("c8 p c12 c12 h")
    variants = search.ablations(cand)
    assert len(variants) == 5
    for label, variant in variants.items():
        changed = {name for name in variant if variant[name] != cand[name]}
        assert len(changed) == 1 or changed == {"degrees", "translate", "scale"} or changed == {"degrees"}, (label, changed)
    assert variants["no BatchNorm"]["batchnorm"] is False
    assert variants["dropout 0.02 (the journey's)"]["dropout"] == 0.02  # the final has none: put it back
    assert "no dropout" in search.ablations(search.candidate("c8 p c12 h", dropout=0.05))
    assert variants["no augmentation"]["degrees"] == 0
    assert variants["constant lr (Adam, 0.001)"]["scheduler"] == "none"
    head = next(v for label, v in variants.items() if label.startswith("flatten"))
    # the GAP head costs 12*10 = 120; f1 after c12 on 8x8 maps (28-2 -> 26, pool 13, 11, 9): 12+2 + 81*10+10 = 834
    assert head["arch"] == "c8 p c12 c12 f1"
    assert search.parameters(head) - search.parameters(cand) == (12 + 2 + 81 * 10 + 10) - 120


def test_an_sgd_final_loses_its_schedule_to_sgds_usual_lr_and_its_weight_average_is_a_recorded_recipe():
    cand = search.candidate("c8 p c12 c12 h", optimizer="sgd", max_lr=0.065, clip_grad_norm=2.0, ema_decay=0.999)
    variants = search.ablations(cand)
    assert variants["constant lr (SGD, 0.01)"] == cand | {"scheduler": "none", "lr": 0.01}
    assert all(v["clip_grad_norm"] == 2.0 and v["ema_decay"] == 0.999 for v in variants.values()), "one idea at a time"
    without_average = search.FINAL | {"ema_decay": 0.0}
    assert without_average in search.RECIPES.values(), "the final without its average: a recipe on record"


def test_the_final_candidate_is_what_step_12s_final_rule_chooses_from_the_records():
    from helpers import designs

    search_only = designs.score_folders(search.ROOT / "results" / "search")
    first = designs.choose(search_only, search.BUDGET)  # the first rule: three seeds, the best mean under 5,000
    every_seed = designs.score_folders(search.ROOT / "results" / "search", search.UNSEEN)
    assert len(every_seed[first]["seeds"]) > len(search_only[first]["seeds"]), "the first choice was checked on unseen seeds"
    searched = designs.choose(every_seed, search.LIMIT, min_seeds=search.MIN_SEEDS, prefer="size")
    assert search.key(search.SEARCHED) == searched
    every_record = search.every_design()
    assert search.key(search.FINAL) == search.final_rule(every_record) and search.parameters(search.FINAL) < 8_000
    assert every_record[search.key(search.FINAL)]["worst"].n >= search.MARGIN_SEEDS


def test_ablation_runs_go_to_their_own_folder(tmp_path, mnist_root, smoke, monkeypatch):
    monkeypatch.setattr(search, "FINAL", search.candidate("c4 p c8 h"))
    monkeypatch.setattr(search, "ablations", lambda cand: {"no augmentation": cand | {"degrees": 0.0}})
    assert search.main(["--ablation", "--seeds", "1", "--out", str(tmp_path / "ablation")]) == 0
    assert [p.name for p in (tmp_path / "ablation").glob("*.json")] == ["c4-p-c8-h_degrees=0__seed1.json"]
    record = json.loads((tmp_path / "ablation" / "c4-p-c8-h_degrees=0__seed1.json").read_text())
    assert record["label"] == "no augmentation", "the table names what was taken away"


def test_each_recipe_changes_only_the_training_of_the_final(tmp_path, mnist_root, smoke, monkeypatch):
    """The recipes cost no parameters: the final's architecture, its parameter count, one record each."""
    for label, cand in search.RECIPES.items():
        assert cand["arch"] == search.SEARCHED["arch"] and search.parameters(cand) == search.parameters(search.SEARCHED), label
    assert len({search.key(c) for c in search.RECIPES.values()}) == len(search.RECIPES)
    monkeypatch.setattr(search, "RECIPES", {"weight averaging": search.candidate("c4 p c8 h", ema_decay=0.9)})
    assert search.main(["--recipes", "--seeds", "1", "--out", str(tmp_path / "recipes")]) == 0
    record = json.loads((tmp_path / "recipes" / "c4-p-c8-h_ema_decay=0.9__seed1.json").read_text())
    assert record["label"] == "weight averaging" and len(record["raw_test_acc"]) == len(record["test_acc"]) == 1


def test_the_recipe_table_pairs_each_recipe_with_the_finals_own_seeds(tmp_path):
    from tests.test_designs import run

    final = search.key(search.SEARCHED)
    for seed, last3 in ((1, [99.5] * 3), (2, [99.4] * 3), (3, [99.6] * 3)):
        (tmp_path / f"{final}__seed{seed}.json").write_text(json.dumps(run(seed, last3, key=final)))
    for seed, last3 in ((1, [99.6] * 3), (2, [99.6] * 3)):  # +0.10 and +0.20 on the seeds both ran
        record = run(seed, last3, key="other") | {"label": "a recipe"}
        (tmp_path / f"other__seed{seed}.json").write_text(json.dumps(record))
    lines = search.paired_table(tmp_path).splitlines()
    row = next(line for line in lines if line.startswith("a recipe"))
    # differences 0.1, 0.2: mean 0.15, sd 0.0707, t(1 df) = 12.71: half-width 0.635
    assert "+0.15 points (95 % interval -0.49 to +0.79; not shown with 2 seeds)" in row
