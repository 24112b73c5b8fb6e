#!/usr/bin/env bash
# Installs Beam's own Python package (the judge of Beam YAML in the tests) into .tools/beam-venv, once.
# From PyPI: apache-beam[yaml] 2.77.0, the version whose schema and catalogue kubectl-beam carries.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.tools/beam-venv
marker="$venv/.apache-beam-2.77.0"
if [ -f "$marker" ]; then
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check 'apache-beam[yaml]==2.77.0'
touch "$marker"
echo "installed apache-beam[yaml]==2.77.0 into $venv"
