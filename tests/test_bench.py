"""The benchmark's building blocks, in smoke mode (a few batches, not a timing)."""

import json
import subprocess
import sys
import textwrap

import platform

import pytest

from helpers import data
from tools import bench, project, readme

FINAL = project.notebook_paths()[-1]
GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


@pytest.mark.slow
def test_the_malloc_setting_changes_no_number(mnist_root, smoke):
    """The reference pipeline with and without helpers' malloc setting: the same batches, the same loss and accuracy."""
    plain = bench.one_run("reference", FINAL, batches=3)
    kept = bench.one_run("reference_kept_memory", FINAL, batches=3)
    batch = project.load_architecture(FINAL)["config"].batch_size
    assert plain["train_images"] == kept["train_images"] == 3 * batch and plain["test_images"] == data.SMOKE_TEST
    assert kept["train_loss"] == plain["train_loss"] and kept["test_accuracy"] == plain["test_accuracy"]


@pytest.mark.parametrize("device", sorted(bench.DEVICE_PIPELINES))
def test_every_pipeline_a_device_measures_gets_its_row_in_the_readme(device, tmp_path, monkeypatch):
    """A benchmark record as ``make bench`` writes it: each measured pipeline appears in the README's table
    under its own label, with its numbers."""
    pipelines = bench.DEVICE_PIPELINES[device]
    median = {p: {"train_seconds": 10.0 + i, "train_images_per_s": 6000.0, "test_seconds": 1.0, "peak_mib": 100.0}
              for i, p in enumerate(pipelines)}
    speedup = {"train": 2.0, "test": 3.0, "train_malloc_only": 1.2, "train_graph": 7.0, "train_graph_vs_eager": 5.0}
    record = {"device": f"{device} (test)", "torch": "2.x", "threads": 2, "repeats": 3, "reference_workers": 4,
              "notebook": "13_final.ipynb", "params": 1, "median": median, "speedup": speedup}
    (tmp_path / f"bench_{device}.json").write_text(json.dumps(record))
    monkeypatch.setattr(readme, "RESULTS", tmp_path)
    monkeypatch.setattr(readme, "ROOT", tmp_path.parent)
    table = readme.bench_table()
    for i, pipeline in enumerate(pipelines):
        label = bench.BENCH_LABELS[device][pipeline].format(workers=4)
        assert f"| {label} | {10.0 + i:.2f} |" in table, (pipeline, table)


def test_a_benchmark_epoch_runs_the_notebooks_whole_step(mnist_root, smoke, monkeypatch):
    """The final clips its gradients and averages its weights: the timed epoch must pay for both, as fit does."""
    seen = {}

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    real = bench.train.train_one_epoch
    monkeypatch.setattr(bench.train, "train_one_epoch", spy)
    bench.one_run("helpers", FINAL, batches=2)
    config = project.load_architecture(FINAL)["config"]
    assert seen["clip_grad_norm"] == config.clip_grad_norm > 0 and seen["label_smoothing"] == config.label_smoothing
    assert (seen["averaged"] is not None) == (config.ema_decay > 0) and config.ema_decay > 0


def test_peak_memory_counts_the_pipeline_not_torch(mnist_root, smoke):
    """Measured above a warmed-up baseline: a few batches of a tiny model add well under 300 MiB (torch itself is ~700)."""
    run = bench.one_run("helpers", FINAL, batches=2)
    assert 0 <= run["peak_bytes"] < 300 * 2**20


@pytest.mark.slow
@pytest.mark.skipif(not GLIBC, reason="a glibc malloc setting")
def test_keep_freed_memory_stops_the_page_faults_of_each_step():
    """Before: every step faults its activations back in. After: almost none."""
    script = textwrap.dedent("""
        import json, resource, torch
        from torch import nn
        from helpers._machinery.cpu import keep_freed_memory
        torch.set_num_threads(1)
        model = nn.Sequential(nn.Conv2d(1, 16, 3), nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, 8, 3))
        X = torch.randn(128, 1, 28, 28)
        def faults_per_step():  # the median over 10 steps: a one-off growth of the heap is not the pattern
            counts = []
            for _ in range(13):
                before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                model(X).sum().backward()
                counts.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
            return sorted(counts[3:])[5]
        default = faults_per_step()
        applied = keep_freed_memory()
        print(json.dumps({"default": default, "applied": applied, "kept": faults_per_step()}))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    faults = json.loads(out.stdout.strip().splitlines()[-1])
    assert faults["applied"]
    assert faults["default"] > 100, faults  # the default hands the big blocks back: hundreds of faults per step
    assert faults["kept"] < faults["default"] / 10, faults


def test_accuracy_table_compares_both_pipelines_seed_by_seed(tmp_path, monkeypatch):
    def rows(values):
        return {"params": 7728, "epochs": 15, "rows": [{"seed": s, "best": b, "last": b, "last3_min": m,
                                                         "epochs_at_target": 1} for s, b, m in values],
                "stats": {k: {"mean": 99.0, "std": 0.1, "min": 98.0} for k in
                          ("best", "last", "last3_min", "epochs_at_target")}}
    record = {"notebook": "13_final.ipynb", "device": "cpu (2 threads)", "reference": rows([(1, 99.45, 99.39)]),
              "helpers": rows([(1, 99.46, 99.42), (2, 99.43, 99.40)])}
    (tmp_path / "reference_pipeline_seeds.json").write_text(json.dumps(record))
    monkeypatch.setattr(readme, "RESULTS", tmp_path)
    monkeypatch.setattr(readme, "ROOT", tmp_path.parent)
    table = readme.accuracy_table()
    assert "| 1 | 99.45 | 99.39 | 99.46 | 99.42 |" in table
    assert "0 of 1 seeds stay" in table
