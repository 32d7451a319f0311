# elastic-jupyter: two virtualenvs, because Enterprise Gateway 3.3 pins jupyter_client<7 and
# jupyter_server<2 while the notebook server users open is jupyter_server 2.
#   .venv         control plane + tests: sandbox, operator (kopf), gateway (EG 3.3 + our plugin)
#   .venv-kernel  what runs "inside" notebook and kernel pods: jupyter_server 2, JupyterLab,
#                 ipykernel, bash_kernel, and our in-pod launcher
PYTHON ?= python3.11
VENV := .venv
KVENV := .venv-kernel
PIP_QUIET := --quiet --disable-pip-version-check
# pip's extra local indexes warn about every package they lack; that noise hides real errors.
PIP_FILTER := 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true
PYTEST_ARGS ?=
ARGS ?=
PARTS := crds gateway_plugin operator kernel_launcher sandbox harness provisioner

.PHONY: all venv browser podman test unit e2e-order lint typecheck pytest demo faults images push-images clean

all: test

venv: $(VENV)/.installed $(KVENV)/.installed .stock-eg/.fetched

$(VENV)/.installed: pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install $(PIP_QUIET) -e '.[gateway,operator,sandbox,test]' $(PIP_FILTER)
	$(VENV)/bin/python -c "import enterprise_gateway, kopf, kubernetes, aiohttp, elastic_jupyter.crds"
	touch $@

$(KVENV)/.installed: pyproject.toml
	test -x $(KVENV)/bin/python || $(PYTHON) -m venv $(KVENV)
	$(KVENV)/bin/pip install $(PIP_QUIET) -e '.[kernel,notebook,provisioner]' bash_kernel $(PIP_FILTER)
	$(KVENV)/bin/python -m bash_kernel.install --sys-prefix >/dev/null
	$(KVENV)/bin/python -c "import jupyter_server, ipykernel, elastic_jupyter.kernel_launcher, elastic_jupyter.provisioner"
	touch $@

# Enterprise Gateway's own kernel launchers (not in its wheel), for the stock-EG rows of the
# reliability table: fetched from PyPI here, at set-up, so no test downloads anything.
.stock-eg/.fetched: $(VENV)/.installed
	$(VENV)/bin/python bench/_stock_eg.py --fetch
	touch $@

# mypy cannot follow setuptools' editable finder, so give it the import layout as symlinks.
.typecheck/elastic_jupyter: Makefile
	mkdir -p $@
	for p in $(PARTS); do ln -sfn ../../$$p $@/$$p; done

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.installed .typecheck/elastic_jupyter
	$(VENV)/bin/mypy $(foreach p,$(PARTS),-p elastic_jupyter.$(p))
	$(VENV)/bin/mypy examples/demo_session.py

# Debian's chromium and the playwright package (never a browser download) for tests/e2e.
browser: $(VENV)/.installed
	scripts/install-browser.sh $(VENV)

# Debian's podman, runc and mmdebstrap for the image builds and tests (tests/images, the
# sandbox's podman runtime) where no Docker engine runs; skipped when present.
podman:
	scripts/install-podman.sh

# pytest exits 5 when it collected nothing: that is a failure here, not a pass.
pytest: venv browser podman
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/pytest $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

test: lint typecheck pytest

# The fast half: every test that needs no sandbox cluster (tests/conftest.py marks those `slow`),
# the import-layering test included. Well under a minute on a quiet machine.
unit: $(VENV)/.installed
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/pytest -q -m "not slow" $(PYTEST_ARGS)

# The end-to-end tests reversed, then shuffled: none may depend on another having run first.
e2e-order: venv browser
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/pytest -q tests/e2e --order reverse
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/pytest -q tests/e2e --order random

# The whole system on the sandbox: operator, gateway, notebook server, a scripted user session.
# ARGS=--once exits after the script; otherwise JupyterLab stays up until Ctrl-C.
demo: venv
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/python examples/demo_session.py $(ARGS)

# The reliability table: every bench/faults_*.py scenario (FAULTS_SIZE=full: minutes; small: what
# tests/faults runs), then bench/faults_report.py renders docs/reliability.md from their rows in
# bench/results/faults/. A scenario that crashes does not stop the others; make fails afterwards.
FAULTS_SIZE ?= full
faults: venv
	status=0; for script in bench/faults_*.py; do \
	  case $$script in bench/faults_report.py) continue;; esac; \
	  echo "==> $$script --size $(FAULTS_SIZE)"; \
	  PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/python $$script --size $(FAULTS_SIZE) \
	    || status=1; \
	done; \
	$(VENV)/bin/python bench/faults_report.py || status=1; \
	exit $$status

# Build the images with Docker where a Docker engine runs, else with podman (see the script for
# IMAGE_PREFIX, TAG, BASE_IMAGE...). Our wheel is built once and copied into each image.
# Unchanged images are not rebuilt. The Dockerfiles: images/gateway/Dockerfile,
# images/operator/Dockerfile, images/kernel-py/Dockerfile, images/kernel-py-gpu/Dockerfile.
export IMAGE_PREFIX TAG ENGINE BASE_IMAGE GPU_BASE_IMAGE
images: venv
	scripts/build-images.sh $(IMAGES)

# The same, then push: make push-images IMAGE_PREFIX=registry.example.com/me TAG=0.1.0
push-images: venv
	scripts/build-images.sh --push $(IMAGES)

clean:
	rm -rf $(VENV) $(KVENV) .typecheck build *.egg-info .pytest_cache .mypy_cache .ruff_cache
