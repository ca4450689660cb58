"""The notebooks against their records: shared cells, Result cells, stored weights, safe re-execution."""

import copy
import os
import json

import nbformat
import pytest
import torch

from helpers import data, journey
from helpers.train import History, evaluate

NOTEBOOKS = journey.notebook_paths()


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/NN_topic.ipynb expected"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_shared_cells_are_stamped(path):
    nb = nbformat.read(path, as_version=4)
    assert not journey.stamp(copy.deepcopy(nb), path.stem), "run `python -m helpers.journey --stamp-only`"
    assert nb.cells[0].source.startswith("# "), "cell 0 is the title"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_chapter_structure(path):
    nb = nbformat.read(path, as_version=4)
    headings = [c.source.splitlines()[0] for c in nb.cells if c.cell_type == "markdown"]
    for heading in ("## Target", "## Result", "## Analysis"):
        assert heading in headings, f"{path.name} has no '{heading}' cell"
    assert headings.index("## Target") < headings.index("## Result") < headings.index("## Analysis")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameter_count_cells_are_checked_by_nbval(path):
    nb = nbformat.read(path, as_version=4)
    printing = [c for c in nb.cells if c.cell_type == "code" and ("show_summary(" in c.source or "count_parameters(" in c.source)]
    assert printing, f"{path.name} never prints its parameter count"
    for cell in printing:
        assert cell.source.startswith("# NBVAL_CHECK_OUTPUT"), cell.source[:80]
        assert cell.outputs, "the stored output is what nbval compares against"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_executed_for_real_without_errors(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.execution_count is not None, f"{path.name} has an unexecuted cell"
            assert all(o.output_type != "error" for o in cell.outputs)
    logs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "SMOKE MODE" not in logs, "the stored outputs come from a smoke run"
    assert "Device: " in logs, "the stored log names its device"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_result_cell_states_the_recorded_numbers(path):
    record = journey.RESULTS / f"{path.stem}.json"
    assert record.exists(), f"{record} missing: run `python -m helpers.journey --steps {path.stem[:2]}`"
    nb = nbformat.read(path, as_version=4)
    cell = nb.cells[journey.result_cell_index(nb)].source
    assert cell == journey.result_markdown(History.load(record), path.stem)


EXTRA_MODELS = {"13_squeeze": "SmallNet"}  # record -> class, for a notebook that trains a second model


def recorded_models():
    """(notebook, class name, record name) for every model whose weights are stored."""
    found = [(path, "Net", path.stem) for path in NOTEBOOKS]
    for record, cls in EXTRA_MODELS.items():
        paths = [p for p in NOTEBOOKS if p.stem[:2] == record[:2]]
        if paths and (journey.RESULTS / f"{record}.json").exists():
            found.append((paths[0], cls, record))
    return found


def test_every_stored_model_is_checked():
    records = {r.stem for r in journey.RESULTS.glob("[0-9][0-9]_*.json") if "seeds" not in r.stem}
    assert records == {record for _, _, record in recorded_models()}


@pytest.mark.parametrize("path, cls, record", recorded_models(), ids=lambda v: getattr(v, "stem", str(v)))
def test_stored_weights_reproduce_the_recorded_accuracy(path, cls, record, mnist_root, full_data):
    """Reload models/NAME.pt and test it on all 10k images on the CPU: at most 2 images off the log."""
    history = History.load(journey.RESULTS / f"{record}.json")
    model = journey.load_architecture(path, cls)[cls]()
    model.load_state_dict(torch.load(journey.REPO_ROOT / "models" / f"{record}.pt"))
    test = data.FastLoader(*data.load_mnist(False, mnist_root), 1_000)
    _, correct, total = evaluate(model, test)
    assert total == 10_000
    assert abs(correct - history.test_correct[-1]) <= 2, (correct, history.test_correct[-1])
    assert sum(p.numel() for p in model.parameters()) == history.params


def test_a_failing_notebook_leaves_the_committed_one_unchanged(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# 98 · broken"),
        nbformat.v4.new_code_cell(""),
        nbformat.v4.new_code_cell(""),
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_code_cell("raise ValueError('boom')"),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    path = tmp_path / "98_broken.ipynb"
    nbformat.write(nb, path)
    before = path.read_bytes()
    with pytest.raises(RuntimeError, match=r"98_broken.ipynb: cell 4 of 4 code cells failed.*unchanged"):
        journey.execute(path)
    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path], "no temporary file left behind"


def test_runner_reports_unknown_steps(capsys):
    assert journey.main(["--steps", "77"]) == 2
    assert "no notebooks match" in capsys.readouterr().err


def test_readme_generated_sections_are_up_to_date():
    text = journey.README.read_text()
    spans = journey.readme_sections(text)
    assert set(spans) == set(journey.SECTIONS), "the README lost a generated section's markers"
    for name, (start, end) in spans.items():
        assert text[start:end].strip() == journey.SECTIONS[name](), f"stale {name}: run `python -m helpers.journey --readme-only`"


def recorded_percentages(upto: str) -> set[str]:
    """Every accuracy recorded by the steps up to ``upto`` (each epoch, train and test; seed tables), as 'NN.NN'."""
    found = {f"{journey.TARGET:.2f}"}
    for record in sorted(journey.RESULTS.glob("[0-9][0-9]_*.json")):
        if record.stem[:2] > upto[:2]:
            continue
        content = json.loads(record.read_text())
        if "rows" in content:  # a seed table
            found |= {f"{row[k]:.2f}" for row in content["rows"] for k in ("best", "last", "last3_min")}
            found |= {f"{v:.2f}" for stats in content["stats"].values() for v in stats.values()}
        else:
            found |= {f"{a:.2f}" for a in content["test_acc"] + content["train_acc"]}
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_analysis_quotes_only_recorded_accuracies(path):
    """Every 'NN.NN %' in the Analysis is a number some recorded run printed (this step or an earlier one)."""
    import re

    nb = nbformat.read(path, as_version=4)
    analysis = next(c.source for c in nb.cells if c.cell_type == "markdown" and c.source.startswith("## Analysis"))
    quoted = set(re.findall(r"(\d{2}\.\d{2}) ?%", analysis))
    assert quoted, f"{path.name}: the Analysis should reason from the recorded numbers"
    assert quoted <= recorded_percentages(path.stem), quoted - recorded_percentages(path.stem)


def test_nbval_fails_when_the_parameter_count_changes(tmp_path):
    """The NBVAL_CHECK_OUTPUT cell is a real check: a stored count that differs from the model's fails nbval."""
    import subprocess
    import sys

    path = NOTEBOOKS[0]
    nb = nbformat.read(path, as_version=4)
    params = History.load(journey.RESULTS / f"{path.stem}.json").params
    cell = next(c for c in nb.cells if c.cell_type == "code" and c.source.startswith("# NBVAL_CHECK_OUTPUT"))
    for output in cell.outputs:
        if "text" in output:
            output.text = output.text.replace(f"{params:,}", f"{params + 1:,}")
    nb.cells = nb.cells[:nb.cells.index(cell) + 1]  # training is not needed for this check
    tampered = tmp_path / path.name
    nbformat.write(nb, tampered)
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
                             "--nbval-current-env", "-o", "addopts=", "--rootdir", str(tmp_path), str(tampered)],
                            capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "MNIST8K_SMOKE": "1"})
    assert result.returncode == 1, result.stdout[-2000:]
    assert "1 failed" in result.stdout and f"{params + 1:,}" in result.stdout


def test_readme_prose_quotes_only_recorded_accuracies():
    """Outside the generated sections, every 'NN.NN %' in the README is a number a recorded run printed."""
    import re

    text = journey.README.read_text()
    for start, end in sorted(journey.readme_sections(text).values(), reverse=True):
        text = text[:start] + text[end:]
    quoted = set(re.findall(r"(\d{2}\.\d{2}) ?%", text))
    assert quoted <= recorded_percentages("99"), quoted - recorded_percentages("99")
