# The two commands of the README:
#   make tour    set everything up, start a throwaway RabbitMQ and run every chapter
#   make test    set everything up and run the test suite against a throwaway RabbitMQ
# Both create .venv, install the Python packages and make sure a broker source exists
# (RABBITMQ_URL, a Docker-compatible engine, or a local rabbitmq-server; as root on Debian
# they install rabbitmq-server with apt-get when there is none, and say so).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.DEFAULT_GOAL := help
.PHONY: help setup tour test test-cluster broker cluster doctor inspect bench lint clean

help:
	@echo "make tour     run every chapter against a throwaway broker (CHAPTER=topics for one)"
	@echo "make test     run the test suite against a throwaway broker"
	@echo "make test-cluster  run the tests of make cluster (three local nodes; apart from make test)"
	@echo "make broker   start a broker and keep it until Ctrl+C (PORT=5672 to fix the port)"
	@echo "make cluster  start three local RabbitMQ nodes, clustered, until Ctrl+C (PORT=5672: 5672-5674)"
	@echo "make doctor   check the broker at RABBITMQ_URL (and RABBITMQ_STREAM_URL); say what to fix"
	@echo "make inspect  show the queues, exchanges and bindings of the broker at RABBITMQ_URL"
	@echo "make bench    measure publisher confirms, RPC, idle CPU, streams; print the tables"
	@echo "make lint     ruff check and format check"
	@echo "make clean    remove .venv and caches"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python 3.10 or newer is needed")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

setup: $(STAMP)
	@$(PY) -m tutorial_tools.provision

tour: setup
	$(PY) -m tutorial_tools.tour $(CHAPTER) $(TOUR_ARGS)

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

# Three local nodes cost make test's two-minute budget about 15 s on two cores: apart.
test-cluster: setup
	$(PY) -m pytest -m cluster -n 1 $(PYTEST_ARGS)

broker: setup
	$(PY) -m tutorial_tools.broker $(if $(PORT),--port $(PORT))

cluster: setup
	$(PY) -m tutorial_tools.cluster $(if $(PORT),--port $(PORT))

doctor: $(STAMP)
	@$(PY) -m tutorial_tools.doctor

inspect: $(STAMP)
	$(PY) -m tutorial_tools.inspector

bench: setup
	$(PY) -m tutorial_tools.bench $(BENCH_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
