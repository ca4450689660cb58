"""helpers.designs: the choice rule, the tables the last notebooks print, a search's records read back."""

import json

import pytest
import torch

from helpers import designs
from helpers.summary import count_parameters, receptive_field_table
from helpers.train import TARGET


def run(seed: int, last3: list[float], params: int = 4_000, arch: str = "c8 p c12 h", key: str = "c8-p-c12-h") -> dict:
    """A search record, as tools.search writes it (only the fields designs reads)."""
    test_acc = [98.0] * 12 + last3
    return {"key": key, "params": params, "config": {"seed": seed}, "candidate": {"arch": arch}, "test_acc": test_acc,
            "train_acc": test_acc, "clean_train_acc": [99.5] * 15, "device": "cpu", "lr": [0.01] * 15,
            "train_loss": [0.1] * 15, "test_loss": [0.1] * 15, "test_correct": [9_900] * 15, "seconds": [1.0] * 15}


def scored(*last3s, params: int = 4_000) -> dict:
    return designs.score_design([run(seed, last3, params) for seed, last3 in enumerate(last3s, 1)])


def test_score_is_the_worst_of_the_last_3_epochs_over_seeds():
    s = scored([99.5, 99.42, 99.6], [99.44, 99.5, 99.5], [99.46, 99.47, 99.48])
    assert s["seeds"] == [1, 2, 3] and s["worst"].lowest == 99.42 and s["worst"].highest == 99.46
    assert s["worst"].mean == pytest.approx(99.44)
    assert s["worst"].std == pytest.approx(0.02)
    assert s["worst"].all_at_target and s["epochs_at_target_mean"] == 3


def test_choose_keeps_to_the_budget_the_seeds_and_the_bar_and_gives_ties_to_the_smaller():
    good = [99.5, 99.5, 99.5]
    candidates = {
        "too big": scored(good, good, good, params=5_001),
        "one seed": scored([99.9] * 3, params=3_000),
        "a seed under the bar": scored([99.9] * 3, [99.9] * 3, [99.39, 99.9, 99.9], params=3_000),
        "held": scored(good, good, good, params=4_900),
        "held, smaller": scored(good, good, [99.5, 99.504, 99.5], params=4_800),
    }
    assert not candidates["a seed under the bar"]["worst"].all_at_target
    assert candidates["a seed under the bar"]["worst"].at_target == 2
    assert designs.choose(candidates, budget=5_000) == "held, smaller"
    assert designs.choose(candidates, budget=5_001, min_seeds=3) == "held, smaller"
    with pytest.raises(ValueError, match=f"no candidate of <= 4,000 parameters holds {TARGET}"):
        designs.choose(candidates, budget=4_000)


def test_choose_by_size_takes_the_smallest_that_holds_on_enough_seeds():
    good, better = [99.45] * 3, [99.6] * 3
    candidates = {
        "smallest, three seeds": scored(good, good, good, params=4_000),
        "small, five seeds": scored(good, good, good, good, good, params=5_500),
        "small, five seeds, better": scored(better, better, better, better, better, params=5_500),
        "large, five seeds, best": scored(*[[99.8] * 3] * 5, params=6_000),
    }
    assert designs.choose(candidates, budget=8_000) == "large, five seeds, best"
    assert designs.choose(candidates, budget=8_000, prefer="size") == "smallest, three seeds"
    assert designs.choose(candidates, budget=8_000, min_seeds=5, prefer="size") == "small, five seeds, better"
    with pytest.raises(ValueError, match="prefer='smallest'"):
        designs.choose(candidates, budget=8_000, prefer="smallest")


def test_choose_with_a_margin_passes_over_designs_that_only_scrape_the_bar():
    scrape, margin = [99.41] * 3, [99.52] * 3
    candidates = {"scrapes, smaller": scored(*[scrape] * 10, params=4_000),
                  "margin": scored(*[margin] * 10, params=5_000)}
    assert designs.choose(candidates, budget=8_000, min_seeds=10, prefer="size") == "scrapes, smaller"
    assert designs.choose(candidates, budget=8_000, min_seeds=10, prefer="size", min_mean=99.5) == "margin"
    with pytest.raises(ValueError, match="with a mean of >= 99.60 %"):
        designs.choose(candidates, budget=8_000, min_seeds=10, min_mean=99.6)


def test_seeds_recorded_in_two_folders_count_together(tmp_path):
    search, check = tmp_path / "search", tmp_path / "check"
    for folder, seed, last3 in ((search, 1, [99.5] * 3), (search, 2, [99.5] * 3), (check, 6, [99.5, 99.38, 99.5])):
        folder.mkdir(exist_ok=True)
        (folder / f"c8-p-c12-h__seed{seed}.json").write_text(json.dumps(run(seed, last3)))
    assert designs.score_folders(search)["c8-p-c12-h"]["worst"].all_at_target
    both = designs.score_folders(search, check)["c8-p-c12-h"]
    assert both["seeds"] == [1, 2, 6] and not both["worst"].all_at_target and both["worst"].lowest == 99.38


def test_records_are_read_back_grouped_by_candidate(tmp_path):
    for seed in (2, 1):
        (tmp_path / f"c8-p-c12-h__seed{seed}.json").write_text(json.dumps(run(seed, [99.4, 99.5, 99.6])))
    (tmp_path / "notes.json").write_text("{}")  # not a run record
    grouped = designs.load_records(tmp_path)
    assert list(grouped) == ["c8-p-c12-h"] and len(grouped["c8-p-c12-h"]) == 2
    assert [h.config["seed"] for h in designs.histories(grouped["c8-p-c12-h"])] == [1, 2]
    assert "c8-p-c12-h" in designs.table(designs.score_folders(tmp_path))


def test_seed_grid_lines_up_each_designs_seeds_and_marks_only_the_misses():
    grouped = {"a": [run(1, [99.5, 99.41, 99.6]), run(3, [99.5, 99.39, 99.6])],
               "b": [run(2, [99.40, 99.45, 99.5], params=5_852, arch="c8 c10 p h", key="b")]}
    header, a, b, footer = designs.seed_grid(grouped).splitlines()
    assert header.split() == ["seed", "1", "2", "3"]
    assert a.split()[-2:] == ["99.41", "99.39*"] and "4,000 c8 p c12 h" in a
    assert b.split()[-2:] == ["h", "99.40"] and "5,852 c8 c10 p h" in b, "exactly at the bar holds: no mark"
    assert a.index("99.39") + 4 == header.index(" 3") + 1, "each value under its seed"
    assert b.index("99.40") + 4 == header.index(" 2") + 1 and a.index("99.41") + 4 == header.index(" 1") + 1
    assert "*" in footer and str(TARGET) in footer


def test_against_table_pairs_each_variant_with_the_base_seed_by_seed():
    final = scored([99.5] * 3, [99.46] * 3, [99.48] * 3)
    table = designs.against_table(final, {"no BatchNorm": scored([99.0] * 3, [99.1] * 3, [99.05] * 3),
                                          "no dropout": scored([99.49] * 3, [99.47] * 3, [99.45] * 3),
                                          "one seed": scored([99.6] * 3)})
    rows = table.splitlines()
    assert rows[0].endswith("against the final model, paired")
    assert rows[2].startswith("the final model") and "99.48 ± 0.02" in rows[2] and "3 of 3" in rows[2]
    # differences -0.50, -0.36, -0.43: mean -0.43, sd 0.07, half-width 4.303 * 0.07 / sqrt(3) = 0.17
    assert rows[3].endswith("-0.43 points (95 % interval -0.60 to -0.26; shown)") and "0 of 3" in rows[3]
    # differences -0.01, +0.01, -0.03: the interval spans zero
    assert rows[4].endswith("-0.01 points (95 % interval -0.06 to +0.04; not shown with 3 seeds)")
    assert rows[5].endswith("(fewer than 2 seeds in common)")
    assert designs.against_table(final, {}, "Adam").splitlines()[2].startswith("Adam")


def test_a_run_recorded_with_a_label_is_shown_by_it():
    records = [run(1, [99.4] * 3) | {"label": "no BatchNorm"}]
    assert designs.score_design(records)["label"] == "no BatchNorm"
    assert designs.score_design([run(1, [99.4] * 3)])["label"] == "c8-p-c12-h", "without a label: the key"


def test_held_out_table_puts_each_epoch_of_both_sets_side_by_side():
    record = {"seed": 1, "held_out_acc": [98.0 + i / 10 for i in range(15)], "test_acc": [98.05 + i / 10 for i in range(15)]}
    lines = designs.held_out_table([record]).splitlines()
    assert len(lines) == 1 + 15 + 1
    assert lines[1].split() == ["1", "98.00", "98.05"] and lines[15].split() == ["15", "99.40", "99.45"]
    assert lines[-1].endswith("held out 99.20, test 99.25")


def test_a_history_read_back_in_smoke_mode_is_never_written_over_a_record(smoke, tmp_path, monkeypatch):
    from helpers import records

    monkeypatch.setenv(records.ROOT_ENV, str(tmp_path))
    history = designs.histories([run(1, [99.4] * 3)])[0]
    assert history.smoke is False  # a real run's record ...
    written = records.save_history(history, "12_search")
    assert tmp_path not in written.parents, "... saved from a smoke run of the notebook goes to a temporary folder"


def test_architecture_string_by_hand():
    # c8: 1*8*9 + BN 16; c8: 8*8*9 + 16; p; c12: 8*12*9 + 24; c16: 12*16*9 + 32; h: 16*10 (no bias, no BN)
    model = designs.build("c8 c8 p c12 c16 h")
    assert count_parameters(model) == (72 + 16) + (576 + 16) + (864 + 24) + (1728 + 32) + 160
    rows = receptive_field_table(model)
    assert [(r["output"], r["receptive_field"]) for r in rows] == [(26, 3), (24, 5), (12, 6), (10, 10), (8, 14),
                                                                  (8, 14), (1, 28)]
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_a_flatten_head_instead_of_gap():
    # f4 after c8 p (26 -> 13x13): 1x1 8->4 + BN 8, then 4*13*13 -> 10 with bias
    assert count_parameters(designs.build("c8 p f4")) == (72 + 16) + (32 + 8) + (4 * 169 * 10 + 10)
    assert designs.build("c8 p f4")(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_padding_separable_and_transition_tokens():
    padded = receptive_field_table(designs.build("C4 h"))
    assert padded[0]["output"] == 28
    # s8 after c4: depthwise 4*9, pointwise 4*8, BN 16; t6: 8*6 + BN 12
    assert count_parameters(designs.build("c4 s8 t6 h")) == (36 + 8) + (36 + 32 + 16) + (48 + 12) + 60
    assert any(isinstance(m, torch.nn.Dropout2d) for m in designs.build("c4 h", dropout=0.1).modules())
    assert not any(isinstance(m, torch.nn.Dropout2d) for m in designs.build("c4 h").modules())


@pytest.mark.parametrize("arch", ["c8 x3 h", "c8 p", "", "c0 h", "cX h", "c8 h c8 h", "c8 f4 c8 h"])
def test_bad_architectures_are_named(arch):
    with pytest.raises(ValueError, match="token|must end|no other"):
        designs.build(arch)


def test_the_smallest_published_layout_has_its_published_parameter_count():
    """Padding 1, two pools (28 -> 14 -> 7), a 1x1 to 8, a 1x1 to 10, then a 3x3 head to 10 maps of 5x5 and
    average pooling: 4,968 parameters, the count the published run states."""
    model = designs.build("C4 C8 p C10 C16 p t8 C16 t10 k")
    assert count_parameters(model) == 4_968
    assert [r["output"] for r in receptive_field_table(model)][-2:] == [5, 1]
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
