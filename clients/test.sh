#!/usr/bin/env bash
# Runs both clients' test suites (and seed 004's plugin scheduler) against a
# real kyu binary: KYU_BIN, else target/debug/kyu (`cargo build -p kyu-cli`
# first, a no-op when it is fresh).
# Installs what they need from the registries only: npm ci (package-lock.json)
# and pip install -e into a venv under target/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if [ -z "${KYU_BIN:-}" ]; then
  echo "clients/test.sh: cargo build -p kyu-cli (a no-op when target/debug/kyu is fresh)"
  cargo build -p kyu-cli
  export KYU_BIN=$root/target/debug/kyu
fi

echo "== clients/typescript: npm ci, tsc, node --test"
(cd clients/typescript && npm ci --no-audit --no-fund && npm test)

echo "== clients/python: venv, pip install -e .[test], pytest"
venv="$root/target/clients-python-venv"
# A venv whose python no longer runs (the checkout moved, the system's
# Python changed) is made anew rather than failing the run.
if ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
  rm -rf "$venv"
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check -e "clients/python[test]"
(cd clients/python && "$venv/bin/python" -m pytest -q)

echo "== examples/plugin-scheduler (seed 004 on the TypeScript client): npm ci, tsc, node --test"
(cd examples/plugin-scheduler && npm ci --no-audit --no-fund && npm test)
