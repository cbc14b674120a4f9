# Two commands on a fresh machine:  `make demo`  (main job, embedded data)  and  `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.labelreg-installed

export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1

.PHONY: install demo test test-fast lint clean fashion-mnist

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt scripts/install.sh
	VENV=$(VENV) bash scripts/install.sh
	touch $(STAMP)

demo: install
	$(PY) scripts/demo.py $(DEMO_ARGS)

# Full suite (docstring examples and slow end-to-end tests included; this is what CI runs).
test: install
	$(PY) -m pytest -q $(PYTEST_ARGS)

# Without the slow end-to-end tests.
test-fast: install
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

# Fashion-MNIST IDX files for scripts/train_image_classifier.py (Debian's package; needs root).
fashion-mnist:
	apt-get install -y dataset-fashion-mnist

lint: install
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) runs .pytest_cache
