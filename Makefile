# Two entry points for a fresh machine: `make book` and `make test` (see README.md).
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: book test clean-book

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Executes the notebooks from the committed cpu results; trains nothing unless REPEAT_ALLOW_TRAIN=1.
# REPEAT_QUIET=1 keeps progress bars and dataset logs out of the pages (lib.quiet).
book: $(STAMP)
	REPEAT_QUIET=1 timeout 900 $(VENV)/bin/jupyter-book build . -W -n --keep-going
	@echo "book: file://$(CURDIR)/_build/html/index.html"

# Unit and end-to-end tests of lib (temporary cache), every notebook at the smoke profile
# (another temporary cache), then the book from the committed cpu results and its HTML checks.
# Both test steps read the fixture corpus in data/fixtures/ (tests/conftest.py sets it for pytest).
test: $(STAMP)
	$(PY) -m pytest -q tests --ignore=tests/test_book_html.py
	REPEAT_PROFILE=smoke REPEAT_ALLOW_TRAIN=1 REPEAT_CACHE_DIR=$$(mktemp -d) REPEAT_CORPORA=$(CURDIR)/data/fixtures \
		$(PY) -m pytest -q --nbval-lax --nbval-current-env notebooks/ book/scorecard.ipynb book/reproducibility.ipynb \
		book/explorer.ipynb book/cost.ipynb book/paper_tables.ipynb book/gpu_window.ipynb book/choosing_scale.ipynb
	$(MAKE) book
	$(PY) -m pytest -q tests/test_book_html.py

clean-book:
	rm -rf _build
