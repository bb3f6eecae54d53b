# The two commands of the README: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# `make run PORT=8001` runs a second instance beside the first (with its own LIANXIN_HOME).
PORT ?= 8000

.PHONY: run test bench clean

$(STAMP): pyproject.toml setup.py queries/_fastchain.c queries/_fastchain_pg.c queries/_chain_rule.h
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# A simulated day through the ARI simulator, the Stasis app, the API and the
# live read models; then the DuckDB warehouse is loaded and the day's KPIs shown.
run: $(STAMP)
	$(BIN)/lianxin demo --port $(PORT)
	$(BIN)/lianxin warehouse load
	$(BIN)/lianxin kpi report --by queue --interval day \
	  --kpi offered,answered,abandoned,service_level,asa_s,abandon_rate,aht_s

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/python bench/append.py

clean:
	rm -rf $(VENV) var
