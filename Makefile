# The two commands of the README:
#   make demo   install into .venv and run the gateway on the simulated board
#   make test   install the test dependencies (Debian, PyPI, npm) and run every test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Debian packages: the build/run base, then what the tests drive (real peers).
BASE_DEBS := python3-venv python3-dev gcc
TEST_DEBS := snmp snmpd snmptrapd mbpoll erlang-snmp smitools iproute2 chromium curl nftables systemd chrony mosquitto mosquitto-clients cmake git
DEMO_ARGS := --board sim --topology board/topologies/demo.json --state-dir state/demo \
             --http-port 8080 --https-port 8443 --modbus-port 5020 --snmp-port 1161 --bacnet-port 47808 \
             --discover full --set discovery.last_address=32 --set snmp.enabled=true --set bacnet.enabled=true

.PHONY: demo test venv clean install

$(BIN)/python:
	sh tools/system-packages.sh $(BASE_DEBS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

venv: $(BIN)/python
	$(BIN)/pip install -q -e .

demo: venv
	$(BIN)/python -m daemon $(DEMO_ARGS)

test: $(BIN)/python
	sh tools/system-packages.sh $(BASE_DEBS) $(TEST_DEBS)
	command -v npm >/dev/null || sh tools/system-packages.sh nodejs npm
	$(BIN)/pip install -q -e '.[test]'
	npm ci --silent --prefix tests/micropython
	npm ci --silent --prefix tests/bacnet
	npm ci --silent --prefix tests/web
	$(BIN)/python -m pytest -n 2 --dist loadfile -m "not alone"
	$(BIN)/python -m pytest -m alone

# On a Raspberry Pi, as root: /opt/open-m70 (slot A, launcher, venv), /var/lib/open-m70, the openm70 user,
# the hardened systemd unit, enabled and started (tools/install.py, docs/upgrade.md)
install: venv
	$(BIN)/python -m tools.install

clean:
	rm -rf $(VENV) state tests/micropython/node_modules tests/bacnet/node_modules tests/web/node_modules
