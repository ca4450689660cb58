"""The notebooks against their records: shared cells, Result cells, stored weights, safe re-execution."""

import copy
import json
import os
import re

import nbformat
import pytest
import torch

from helpers import data, designs
from helpers.records import History
from helpers.train import evaluate
from tools import journey, project, readme, search

NOTEBOOKS = project.notebook_paths()


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/NN_topic.ipynb expected"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_shared_cells_are_stamped(path):
    nb = nbformat.read(path, as_version=4)
    assert not journey.stamp(copy.deepcopy(nb), path.stem), "run `python -m tools.journey --stamp-only`"
    assert nb.cells[0].source.startswith("# "), "cell 0 is the title"


def test_title_navigation_links_the_neighbours():
    first, third, last = (nbformat.read(NOTEBOOKS[i], as_version=4).cells[0].source for i in (0, 2, -1))
    assert f"**Step 3 of {len(NOTEBOOKS)}**" in third
    assert f"({NOTEBOOKS[1].name})" in third and f"({NOTEBOOKS[3].name}) →" in third
    assert "←" not in first and f"({NOTEBOOKS[1].name}) →" in first
    assert "→" not in last.splitlines()[1] and f"← [{NOTEBOOKS[-2].stem[:2]}" in last


def test_import_cell_imports_what_the_notebook_uses_and_nothing_else():
    code = "model = nn.Linear(2, 2)\nh = fit(model, Config())\nplots.training_curves(h)  # not torch.nn.F, not set_seeds"
    cells = [nbformat.v4.new_markdown_cell("# 99 · x"), nbformat.v4.new_code_cell(""), nbformat.v4.new_code_cell(""),
             nbformat.v4.new_code_cell(code)]
    nb = nbformat.v4.new_notebook(cells=cells)
    assert journey.imports_source(nb) == "from torch import nn\n\nfrom helpers import Config, fit, plots"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_imported_name_is_used(path):
    nb = nbformat.read(path, as_version=4)
    later = journey.used_names("\n".join(c.source for c in nb.cells[3:] if c.cell_type == "code"))
    namespace: dict = {}
    exec(nb.cells[2].source, namespace)
    for name in set(namespace) - {"__builtins__"}:
        assert name in later, f"{path.name} imports {name} but never uses it"


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
    trains = any("fit(" in c.source for c in nb.cells if c.cell_type == "code")
    assert ("Device: " if trains else "recorded on ") in logs, "the stored log names the device the runs used"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_result_cell_states_the_recorded_numbers(path):
    record = project.RESULTS / f"{path.stem}.json"
    assert record.exists(), f"{record} missing: run `python -m tools.journey --steps {path.stem[:2]}`"
    nb = nbformat.read(path, as_version=4)
    cell = nb.cells[journey.result_cell_index(nb)].source
    assert cell == journey.result_markdown(History.load(record), path.stem, project.load_seeds(path.stem))


def saves_weights(path) -> bool:
    return any("save_run(" in c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")


def recorded_models():
    """(notebook, class name, record name) for every model whose weights are stored."""
    return [(path, "Net", path.stem) for path in NOTEBOOKS if saves_weights(path)]


def test_every_stored_model_is_checked():
    weights = {w.stem for w in (project.ROOT / "models").glob("[0-9][0-9]_*.pt")}
    assert weights == {record for _, _, record in recorded_models()}
    step_records = {r.stem for r in project.RESULTS.glob("[0-9][0-9]_*.json") if "seeds" not in r.stem}
    assert weights <= step_records, "every stored model has its run's record"


@pytest.mark.slow
@pytest.mark.parametrize("path, cls, record", recorded_models(), ids=lambda v: getattr(v, "stem", str(v)))
def test_stored_weights_reproduce_the_recorded_accuracy(path, cls, record, mnist_root, full_data):
    """Reload models/NAME.pt and test it on all 10k images on the CPU: at most 2 images off the log."""
    history = History.load(project.RESULTS / f"{record}.json")
    model = project.load_architecture(path, cls)[cls]()
    model.load_state_dict(torch.load(project.ROOT / "models" / f"{record}.pt"))
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


@pytest.mark.parametrize("page", list(readme.PAGES), ids=lambda page: page.name)
def test_generated_sections_are_up_to_date(page):
    text = page.read_text()
    spans = readme.readme_sections(text)
    assert set(spans) == set(readme.PAGES[page]), f"{page.name} lost (or gained) a generated section's markers"
    for name, (start, end) in spans.items():
        assert text[start:end].strip() == readme.SECTIONS[name](), f"stale {name}: run `python -m tools.journey --readme-only`"


def test_every_generated_section_has_one_page():
    assert sorted(name for names in readme.PAGES.values() for name in names) == sorted(readme.SECTIONS)


def test_the_readme_stays_learner_sized_and_links_every_doc():
    text = readme.README.read_text()
    assert len(text.split()) <= 1_800, len(text.split())
    for page in readme.PAGES:
        if page != readme.README:
            assert f"(docs/{page.name})" in text, page.name


# The records a step reads besides its own results/NN_*.json: the search's runs (step 12 shows the search,
# step 13 its ablation, held-out check and squeeze).
READS = {"12": ["search", "search/cuda", "unseen_seeds", "small_designs"],
         "13": ["search", "search/held_out", "ablation", "unseen_seeds", "recipes", "small_designs"]}


def recorded_percentages(step: str) -> set[str]:
    """Every accuracy one step recorded (each epoch, train and test; its seed tables and their runs), as 'NN.NN'."""
    found = set()
    for folder in READS.get(step[:2], []):
        for records in designs.load_records(project.RESULTS / folder).values():
            found |= {f"{a:.2f}" for r in records for key in ("test_acc", "train_acc", "clean_train_acc", "held_out_acc")
                      for a in r.get(key, [])}
            if "config" in records[0]:  # a search run (a held-out record is not scored)
                scored = designs.score_design(records)
                w = scored["worst"]
                found |= {f"{v:.2f}" for v in [*scored.values(), w.mean, w.std, w.lowest, w.highest] if isinstance(v, float)}
    for record in sorted(project.RESULTS.glob(f"{step[:2]}_*.json")):
        content = json.loads(record.read_text())
        if "rows" in content:  # a seed table
            found |= {f"{row[k]:.2f}" for row in content["rows"] for k in ("best", "last", "last3_min")}
            found |= {f"{v:.2f}" for stats in content["stats"].values() for v in stats.values()}
            for history in content.get("histories", []):  # every seed's epochs
                found |= {f"{a:.2f}" for key in ("test_acc", "train_acc", "clean_train_acc") for a in history[key]}
        else:
            found |= {f"{a:.2f}" for key in ("test_acc", "train_acc", "clean_train_acc") for a in content.get(key, [])}
    return found


CITED_STEP = re.compile(r"\b[Ss]teps? (\d{1,2})\b|\b(\d{2})'s\b")


def unrecorded_numbers(text: str, step: str) -> set[str]:
    """The 'NN.NN %' in ``text`` that neither this step recorded nor a step its paragraph or bullet names ('step 04')."""
    wrong = set()
    for sentence in re.split(r"\n\s*\n|\n(?=\s*[-*] )", text):
        allowed = {f"{journey.TARGET:.2f}"} | recorded_percentages(step)
        for match in CITED_STEP.finditer(sentence):
            allowed |= recorded_percentages((match.group(1) or match.group(2)).zfill(2))
        wrong |= set(re.findall(r"(\d{2}\.\d{2}) ?%", sentence)) - allowed
    return wrong


def recorded_runs(step: str) -> list[dict]:
    """Every run one step recorded, epoch by epoch: its own run, its seed tables' runs, the search records it reads."""
    runs = [r for folder in READS.get(step[:2], []) for records in designs.load_records(project.RESULTS / folder).values()
            for r in records]
    for record in sorted(project.RESULTS.glob(f"{step[:2]}_*.json")):
        content = json.loads(record.read_text())
        runs += content.get("histories", []) if "rows" in content else [content]
    return [r for r in runs if r.get("test_acc")]


NEGATION = re.compile(r"\b(not|never|no|none|nor|missed|short of|below|under)\b", re.I)
AT_EPOCH = re.compile(r"(\d{2}\.\d{2}) ?% (?:\(epoch (\d+)\)|(?:in|at|on) epoch (\d+))")
OF_15 = re.compile(r"\b(\d{1,2}) of (?:its |the |their )?15 epochs\b")
EACH_LAST = re.compile(r"\beach of (?:its|the|their) last (\d+) epochs\b")


def wrong_epoch_claims(text: str, step: str) -> list[str]:
    """Claims about epochs that no run of this step (or of a step the same paragraph names) bears out:
    'NN.NN % (epoch E)', 'N of 15 epochs' (at the bar), and 'at 99.4 % on each of its last K epochs'."""
    wrong = []
    for paragraph in re.split(r"\n\s*\n|\n(?=\s*[-*] )", text):
        runs = recorded_runs(step) + [r for m in CITED_STEP.finditer(paragraph)
                                      for r in recorded_runs((m.group(1) or m.group(2)).zfill(2))]
        for value, e1, e2 in AT_EPOCH.findall(paragraph):
            epoch = int(e1 or e2)
            if not any(len(r[key]) >= epoch and f"{r[key][epoch - 1]:.2f}" == value
                       for r in runs for key in ("test_acc", "train_acc", "clean_train_acc") if r.get(key)):
                wrong.append(f"{value} % in epoch {epoch}")
        for sentence in re.split(r"(?<=[.;:])\s", paragraph):
            named = [r for m in CITED_STEP.finditer(sentence) for r in recorded_runs((m.group(1) or m.group(2)).zfill(2))]
            runs_here = named or runs  # a sentence that names a step is about that step
            for n in OF_15.findall(sentence):
                if "99.4" in sentence and not any(sum(a >= journey.TARGET for a in r["test_acc"]) == int(n)
                                                  for r in runs_here):
                    wrong.append(f"{n} of 15 epochs at the bar")
            for k in EACH_LAST.findall(sentence):
                if "99.4" in sentence and not NEGATION.search(sentence) and not any(
                        min(r["test_acc"][-int(k):]) >= journey.TARGET for r in runs_here):
                    wrong.append(f"at the bar on each of the last {k} epochs")
    return wrong


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_analysis_quotes_only_recorded_accuracies(path):
    """Every 'NN.NN %' in the Analysis was recorded by this step, or by a step the same paragraph names."""
    nb = nbformat.read(path, as_version=4)
    analysis = next(c.source for c in nb.cells if c.cell_type == "markdown" and c.source.startswith("## Analysis"))
    assert re.findall(r"\d{2}\.\d{2} ?%", analysis), f"{path.name}: the Analysis should reason from the recorded numbers"
    assert not unrecorded_numbers(analysis, path.stem)
    assert not wrong_epoch_claims(analysis, path.stem)


def test_the_epoch_check_catches_a_wrong_epoch_count_and_a_wrong_streak():
    h = History.load(project.RESULTS / "08_learning_rate.json")
    at_bar = len(h.epochs_at_target)
    assert not wrong_epoch_claims(f"It held 99.4 % in {at_bar} of 15 epochs.", "08")
    assert wrong_epoch_claims(f"It held 99.4 % in {at_bar + 20} of 15 epochs.", "08")
    best = h.best_test_acc
    assert not wrong_epoch_claims(f"Its best was {best:.2f} % (epoch {h.best_epoch}).", "08")
    assert wrong_epoch_claims(f"Its best was {best:.2f} % (epoch {h.best_epoch % 15 + 1}).", "08")
    # step 09's old claim: step 08 "reached 99.4 % in each of its last 4 epochs"; no run of step 08 did
    claim = "Step 08 reached 99.4 % in each of its last 4 epochs."
    assert not any(min(r["test_acc"][-4:]) >= 99.4 for r in recorded_runs("08"))
    assert wrong_epoch_claims(claim, "09") == ["at the bar on each of the last 4 epochs"]
    assert not wrong_epoch_claims("Step 08 did not reach 99.4 % in each of its last 4 epochs.", "09")


def test_the_analysis_check_catches_a_typo_and_an_uncited_number():
    step = NOTEBOOKS[-1].stem
    last3 = History.load(project.RESULTS / f"{step}.json").worst_of_last3
    assert not unrecorded_numbers(f"The worst of the last 3 epochs was {last3:.2f} %.", step)
    typo = f"{last3 + 0.01:.2f}"
    while typo in recorded_percentages(step):
        typo = f"{float(typo) + 0.01:.2f}"
    assert unrecorded_numbers(f"The worst of the last 3 epochs was {typo} %.", step) == {typo}
    first = History.load(project.RESULTS / f"{NOTEBOOKS[0].stem}.json")
    only_in_01 = next(f"{a:.2f}" for a in first.test_acc if f"{a:.2f}" not in recorded_percentages(step))
    assert unrecorded_numbers(f"It began at {only_in_01} %.", step) == {only_in_01}
    assert not unrecorded_numbers(f"Step 01 began at {only_in_01} %.", step)


@pytest.mark.slow
def test_nbval_fails_when_the_parameter_count_changes(tmp_path):
    """The NBVAL_CHECK_OUTPUT cell is a real check: a stored count that differs from the model's fails nbval."""
    import subprocess
    import sys

    path = NOTEBOOKS[0]
    nb = nbformat.read(path, as_version=4)
    params = History.load(project.RESULTS / f"{path.stem}.json").params
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


def test_compare_pairs_two_steps_on_their_common_seeds(monkeypatch):
    from helpers.records import SeedStats

    fake = {"a": SeedStats({1: 99.30, 2: 99.20, 3: 99.25}), "b": SeedStats({1: 99.40, 2: 99.40, 3: 99.40}),
            "c": SeedStats({1: 99.31, 2: 99.19, 3: 99.26}), "d": SeedStats({1: 99.50})}
    monkeypatch.setattr(readme, "evidence", fake.__getitem__)
    assert readme.compare("a", "b") == "99.25 % → 99.40 %: +0.15 points (95 % interval +0.03 to +0.27; shown)"
    assert readme.compare("a", "c").endswith("; not shown with 3 seeds)")
    assert readme.compare("b", "a").endswith("-0.03; shown)"), "a loss counts as much as a gain"
    assert readme.compare("a", "d").endswith("(+0.25 points; under 2 common seeds: no paired interval)")
    assert readme.versus(SeedStats({1: 99.0, 2: 99.2, 4: 99.9}), fake["b"]).startswith("99.10 % → 99.40 %"), \
        "the means shown are over the seeds paired"


def test_the_design_table_pairs_every_comparison_from_the_records():
    rows = [line for line in readme.design_table().splitlines() if line.startswith("| ")][2:]
    compared = [row for row in rows if " → " in row and "%" in row]
    assert len(compared) >= 8 and all("95 % interval" in row or "no paired interval" in row for row in compared)
    assert "noise" not in readme.design_table()


def test_the_averaging_row_pairs_each_runs_raw_weights_with_its_average():
    runs = designs.load_records(search.RECIPE_RUNS)[search.key(search.FINAL)]
    runs += json.loads((project.RESULTS / "13_final_seeds.json").read_text())["histories"]
    differences = [min(r["test_acc"][-3:]) - min(r["raw_test_acc"][-3:]) for r in runs]
    [(_, _, showed)] = readme.averaging_rows()
    assert f"{len(runs)} seeds (step 13)" in showed
    assert f"{sum(differences) / len(differences):+.2f} points" in showed
    held = sum(min(r["raw_test_acc"][-3:]) >= journey.TARGET for r in runs)
    assert f"the raw weights hold the bar on {held} of {len(runs)} seeds" in showed


def test_seed_lists_are_written_as_runs_of_consecutive_seeds():
    assert readme.spans([5, 1, 2, 3, 4, 7]) == "1–5, 7"
    assert readme.spans([6, 7, 9, 10, 11]) == "6, 7, 9–11", "two in a row are listed, not joined"
    assert readme.spans([19]) == "19" and readme.spans([]) == ""


def test_the_headline_names_each_checked_design_and_its_misses_from_the_records():
    line = readme.earlier_choices_line()
    for k, records in designs.load_records(search.UNSEEN).items():
        s = designs.score_design(records)
        if k == search.key(search.FINAL):
            assert f"`{s['arch']}`" not in line
            continue
        assert f"`{s['arch']}`" in line and f"on {sum(min(r['test_acc'][-3:]) >= journey.TARGET for r in records)} of {len(records)} seeds" in line
        for r in records:
            worst = min(r["test_acc"][-3:])
            assert (f"seed {r['config']['seed']}: {worst:.2f} %" in line) == (worst < journey.TARGET)


def test_the_headline_counts_the_rules_seeds_and_the_final_notebooks_together():
    rows = json.loads((project.RESULTS / "13_final_seeds.json").read_text())["rows"]
    records = designs.load_records(search.RECIPE_RUNS)[search.key(search.FINAL)]
    held = sum(r["last3_min"] >= journey.TARGET for r in rows) + sum(min(r["test_acc"][-3:]) >= journey.TARGET for r in records)
    assert f", {held} of {len(rows) + len(records)} seeds hold the bar." in readme.headline()
    assert "final notebook's" not in readme.chosen_on_line(designs.score_design(records), [records[0]["config"]["seed"]], 1), \
        "a seed counted twice is not added"


@pytest.mark.parametrize("page", list(readme.PAGES), ids=lambda page: page.name)
def test_readme_prose_quotes_only_recorded_accuracies(page):
    """Outside the generated sections, every 'NN.NN %' in the README and docs/ is a number a recorded run printed."""

    text = page.read_text()
    for start, end in sorted(readme.readme_sections(text).values(), reverse=True):
        text = text[:start] + text[end:]
    quoted = set(re.findall(r"(\d{2}\.\d{2}) ?%", text))
    everything = set().union(*(recorded_percentages(p.stem) for p in NOTEBOOKS))
    assert quoted <= everything, quoted - everything


# ---- what the runner stores --------------------------------------------------

def stored_text(nb) -> str:
    return "".join(o.get("text", "") + json.dumps(o.get("data", {}).get("text/plain", ""))
                   for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def assert_clean(nb, name: str) -> None:
    """What a reader of the stored notebook must not see: progress-bar fragments, machine paths, echoes, errors."""
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        streams = [o for o in cell.outputs if o.output_type == "stream"]
        assert len(streams) <= 3, f"{name} cell {i}: {len(streams)} stream outputs (progress-bar fragments?)"
        assert all(o.output_type != "error" for o in cell.outputs), f"{name} cell {i} stored an error"
        assert "execution" not in cell.metadata, f"{name} cell {i}: the kernel's timestamps are stored"
    text = stored_text(nb)
    assert "\r" not in text, f"{name}: a carriage return (a progress bar) is stored"
    assert "PosixPath" not in text and "WindowsPath" not in text, f"{name}: a path object was echoed"
    for folder in {str(project.ROOT), os.path.expanduser("~"), "/tmp/", "/home/", "/work/", "/content/"} - {"/"}:
        assert folder not in text, f"{name}: the machine path {folder} is stored"


@pytest.mark.slow
def test_runner_stores_a_clean_notebook(tmp_path, mnist_root):
    """Step 01 through the runner in smoke mode, into a temporary file: the committed notebook is not touched."""
    path = NOTEBOOKS[0]
    before = path.read_bytes()
    into = tmp_path / path.name
    journey.execute(path, smoke=True, into=into)
    assert path.read_bytes() == before
    nb = nbformat.read(into, as_version=4)
    assert_clean(nb, path.name)
    log = stored_text(nb)
    assert "SMOKE MODE" in log and "Device: cpu" in log and "Saved results/" in log


def test_clean_outputs_merges_streams_and_resolves_carriage_returns():
    """A log that a progress bar interrupted comes out as one stream: the bar leaves nothing behind."""
    cell = nbformat.v4.new_code_cell("fit()")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="epoch 1 done\n"),
                    nbformat.v4.new_output("stream", name="stderr", text="\repoch 1:  10%|█ | 5/50"),
                    nbformat.v4.new_output("stream", name="stderr", text="\repoch 1:  90%|█████ | 45/50"),
                    nbformat.v4.new_output("stream", name="stderr", text="\r                    \r"),
                    nbformat.v4.new_output("stream", name="stdout", text="epoch 2 done\n")]
    cell.metadata["execution"] = {"iopub.status.busy": "2026-11-22T07:02:47.1Z"}
    nb = nbformat.v4.new_notebook(cells=[cell])
    journey.clean_outputs(nb)
    assert [(o.name, o.text) for o in nb.cells[0].outputs] == [("stdout", "epoch 1 done\nepoch 2 done\n")]
    assert "execution" not in nb.cells[0].metadata


def test_assert_clean_fails_on_what_the_old_runner_stored():
    """The check above is a real one: a notebook as the runner used to store it fails it."""
    cell = nbformat.v4.new_code_cell("save_run(model, history, '01_vanilla')")
    cell.outputs = [nbformat.v4.new_output("execute_result", data={"text/plain": "(PosixPath('x.json'), None)"},
                                           execution_count=1)]
    with pytest.raises(AssertionError, match="PosixPath"):
        assert_clean(nbformat.v4.new_notebook(cells=[cell]), "old")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"Saved {project.ROOT}/results/x.json\n")]
    with pytest.raises(AssertionError, match="machine path"):
        assert_clean(nbformat.v4.new_notebook(cells=[cell]), "old")


def test_a_fork_is_one_command_away(tmp_path, monkeypatch):
    """--repository rewrites the one place that names the repository; badges and the setup cell follow it."""
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(project.PYPROJECT.read_text())
    monkeypatch.setattr(project, "PYPROJECT", pyproject)
    project.set_repository("someone/their-fork")
    assert project.repository() == "someone/their-fork"
    assert "https://github.com/someone/their-fork" in journey.setup_source()
    assert "github/someone/their-fork/blob/main/notebooks/01_vanilla.ipynb" in project.badge("01_vanilla")
    with pytest.raises(ValueError, match="OWNER/NAME"):
        project.set_repository("not a repository")


def test_journey_plot_draws_every_step(tmp_path):
    from tests.test_train import fake_history

    paths = [fake_history([97.0, 98.5, 99.1]).save(tmp_path / "01_a.json"),
             fake_history([99.0, 99.5]).save(tmp_path / "02_b.json")]
    ax_acc, ax_params = readme.journey_plot(paths).axes
    best = next(line for line in ax_acc.get_lines() if line.get_label().startswith("best epoch"))
    assert list(best.get_ydata()) == [99.1, 99.5]
    assert [t.get_text() for t in ax_params.get_xticklabels()] == ["01", "02"]
    assert [p.get_height() for p in ax_params.patches] == [123, 123]


@pytest.mark.slow
def test_helpers_does_not_import_the_tools():
    """A learner's `import helpers` loads neither the tools nor the notebook machinery."""
    import subprocess
    import sys

    script = ("import sys, helpers, helpers.data, helpers.train, helpers.summary, helpers.plots\n"
              "print(sorted({m.split('.')[0] for m in sys.modules} & {'tools', 'nbformat', 'nbclient', 'nbval'}))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_result_cell_gives_the_seed_figures_when_there_are_seed_runs():
    from tests.test_train import fake_history
    from helpers.records import seed_summary

    runs = [fake_history([99.0, 99.45, 99.42, 99.43]), fake_history([99.1, 99.38, 99.44, 99.46])]
    runs[0].config, runs[1].config = {"seed": 1}, {"seed": 2}
    cell = journey.result_markdown(runs[0], "99_x", seed_summary(runs))
    assert "| over 2 seeds (1, 2): worst of the last 3 epochs | 99.40 % ± 0.03 (lowest 99.38 %) |" in cell
    assert "| seeds at ≥ 99.4 % on each of the last 3 epochs | 1 of 2 |" in cell
    assert "results/99_x_seeds.json" in cell
    assert "seeds" not in journey.result_markdown(runs[0], "99_x")


def test_journey_plot_draws_the_seed_range_where_there_is_one(tmp_path):
    from tests.test_train import fake_history

    paths = [fake_history([97.0, 98.5, 99.1]).save(tmp_path / "01_a.json"),
             fake_history([99.0, 99.5, 99.45]).save(tmp_path / "02_b.json")]
    seeds = {"rows": [{"seed": 1, "last3_min": 99.1}, {"seed": 2, "last3_min": 99.3}, {"seed": 3, "last3_min": 99.2}]}
    (tmp_path / "02_b_seeds.json").write_text(json.dumps(seeds))
    ax_acc = readme.journey_plot(paths).axes[0]
    (bars,) = [c for c in ax_acc.containers]
    (points,) = [line for line in ax_acc.get_lines() if line.get_marker() == "D"]
    assert list(points.get_xdata()) == [1] and list(points.get_ydata()) == pytest.approx([99.2])
    segment = bars.lines[2][0].get_segments()[0]
    assert segment[:, 1].tolist() == pytest.approx([99.1, 99.3])


def the_loop_of_step_01():
    """The function ``train_by_hand`` as step 01 writes it, with the notebook's own imports."""
    import ast

    nb = nbformat.read(NOTEBOOKS[0], as_version=4)
    namespace: dict = {}
    exec(nb.cells[2].source, namespace)
    cell = next(c.source for c in nb.cells if c.cell_type == "code" and "def train_by_hand(" in c.source)
    definition = [node for node in ast.parse(cell).body if isinstance(node, ast.FunctionDef)]
    exec(compile(ast.Module(body=definition, type_ignores=[]), "01_vanilla", "exec"), namespace)
    return namespace["train_by_hand"]


def test_the_loop_written_out_in_step_01_is_what_fit_runs(mnist_root, smoke):
    """Same seed, same config: the notebook's hand-written loop and fit give the same numbers."""
    from torch import nn

    from helpers.train import Config, fit, set_seed
    from tests.test_train import tiny_net

    def net():  # with dropout, so that the random stream must match too
        return nn.Sequential(nn.Dropout2d(0.1), tiny_net())

    config = Config(epochs=1, batch_size=64, optimizer="adam", lr=0.003, seed=5)
    set_seed(5)
    by_hand = the_loop_of_step_01()(net(), config, torch.device("cpu"))
    set_seed(5)
    history = fit(net(), config, device=torch.device("cpu"), progress=False, quiet=True)
    assert [correct for _, correct in by_hand] == history.test_correct
    assert [loss for loss, _ in by_hand] == pytest.approx(history.train_loss, rel=1e-6)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_notebooks_are_clean(path):
    """What GitHub shows: no progress-bar fragments, carriage returns, machine paths, echoed paths or errors."""
    assert_clean(nbformat.read(path, as_version=4), path.name)


def test_the_final_notebook_trains_the_searchs_final_candidate_on_seeds_the_search_never_used():
    namespace = project.load_architecture(project.NOTEBOOKS / "13_final.ipynb")
    ours, theirs = namespace["Net"](), designs.build(search.FINAL["arch"], search.FINAL["dropout"], search.FINAL["batchnorm"])

    def leaves(model):
        return [(type(m).__name__, tuple(p.shape for p in m.parameters())) for m in model.modules() if not list(m.children())]

    assert leaves(ours) == leaves(theirs)
    config = namespace["config"]
    for name in ("epochs", "batch_size", "optimizer", "momentum", "scheduler", "max_lr", "pct_start", "div_factor",
                 "final_div_factor", "degrees", "translate", "scale", "clip_grad_norm", "ema_decay", "label_smoothing"):
        assert getattr(config, name) == search.FINAL[name], name
    seeds = {r["seed"] for r in json.loads((project.RESULTS / "13_final_seeds.json").read_text())["rows"]}
    chosen_on = set(search.every_design()[search.key(search.FINAL)]["seeds"])
    assert len(chosen_on) >= search.MARGIN_SEEDS
    assert len(seeds) == 5 and not seeds & chosen_on, "the final's seeds played no part in choosing it"


def test_the_runner_records_each_notebooks_time_and_the_readme_shows_it(tmp_path, monkeypatch):
    times = tmp_path / "journey_times.json"
    monkeypatch.setattr(journey, "TIMES", times)
    monkeypatch.setattr(readme, "TIMES", times)
    monkeypatch.delenv("MNIST8K_SEEDS", raising=False)
    journey.record_time("01_vanilla", 630.0)
    monkeypatch.setenv("MNIST8K_SEEDS", "train")
    journey.record_time("02_fewer_parameters", 1500.0)
    stored = json.loads(times.read_text())
    assert stored["01_vanilla"]["extra_seeds"] == "recorded" and stored["02_fewer_parameters"]["extra_seeds"] == "trained"
    assert stored["01_vanilla"]["device"] == History.load(project.RESULTS / "01_vanilla.json").device
    rows = {line.split(" | ")[0]: line for line in readme.journey_table().splitlines() if line.startswith("| 0")}
    assert "| 10 min¹ |" in rows["| 01"] and "| 25 min |" in rows["| 02"] and "| 03" in rows
    assert rows["| 03"].count("|  |") == 1, "a notebook never timed shows no time"
    default = (630.0 + 1500.0 - readme.switched_seconds("02_fewer_parameters")) / 60
    assert f"about {default:.0f} min for these 2 notebooks with `TRAIN_SEEDS = False`" in readme.journey_table(), \
        "a notebook timed with its seeds trained counts without them"


def test_what_the_seed_switch_adds_is_the_recorded_time_of_the_runs_a_notebook_reads():
    table = json.loads((project.RESULTS / "02_fewer_parameters_seeds.json").read_text())
    own, *others = table["histories"]
    assert own["config"]["seed"] == 1, "the first run of a seed table is the notebook's own"
    assert readme.switched_seconds("02_fewer_parameters") == pytest.approx(sum(sum(h["seconds"]) for h in others))
    flat = json.loads((project.RESULTS / "01_flatten_head_seeds.json").read_text())["histories"]
    assert readme.switched_seconds("01_vanilla") > sum(sum(h["seconds"]) for h in flat), "01's flatten head counts too"
    assert readme.switched_seconds("12_search") == 0, "step 12 reads the search's records whatever the switch says"


# A notebook is a chapter: words of markdown (generated cells included), at most 400 in any one cell.
WORD_LIMITS = {"01": 1_600, "12": 1_400, "13": 1_600}  # 01 holds the statistics primer; the others 1,100


def markdown_words(path) -> list[int]:
    return [len(c.source.split()) for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_notebook_reads_as_a_chapter_not_a_report(path):
    words = markdown_words(path)
    assert sum(words) <= WORD_LIMITS.get(path.stem[:2], 1_100), sum(words)
    assert max(words) <= 400, max(words)


def test_the_readme_is_for_a_learner():
    assert len((project.ROOT / "README.md").read_text().split()) <= 1_800
