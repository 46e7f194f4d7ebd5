#!/usr/bin/env bash
# Runs both clients' test suites against a real kyu binary: KYU_BIN, else
# target/debug/kyu (built with `cargo build -p kyu-cli` when missing).
# Installs what they need from the registries only: npm ci (package-lock.json)
# and pip install -e into a venv under target/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export KYU_BIN=${KYU_BIN:-$root/target/debug/kyu}
if [ ! -x "$KYU_BIN" ]; then
  echo "clients/test.sh: building kyu (cargo build -p kyu-cli)"
  cargo build -p kyu-cli
fi

echo "== clients/typescript: npm ci, tsc, node --test"
(cd clients/typescript && npm ci --no-audit --no-fund && npm test)

echo "== clients/python: venv, pip install -e .[test], pytest"
venv="$root/target/clients-python-venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check -e "clients/python[test]"
(cd clients/python && "$venv/bin/python" -m pytest -q)

echo "== examples/plugin-scheduler (seed 004 on the TypeScript client): npm ci, tsc, node --test"
(cd examples/plugin-scheduler && npm ci --no-audit --no-fund && npm test)
