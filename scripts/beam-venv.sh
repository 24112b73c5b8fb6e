#!/usr/bin/env bash
# Installs Beam's own Python package (the judge of Beam YAML in the tests), once per machine: from PyPI,
# apache-beam[yaml] 2.77.0, the version whose schema and catalogue kubectl-beam carries. The venv lives in the cache
# outside the checkout ($BEAMSTACK_CACHE, default ~/.cache/beamstack), one per Python version (a venv is bound to
# its interpreter), and .tools/beam-venv links to it: a fresh clone on a warm machine takes no time.
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${BEAMSTACK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/beamstack}"
python_version=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
venv="$cache/python/beam-venv-2.77.0-py$python_version"
if [ ! -f "$venv/.complete" ]; then
  rm -rf "$venv"
  mkdir -p "$cache/python"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'apache-beam[yaml]==2.77.0'
  touch "$venv/.complete"
  echo "installed apache-beam[yaml]==2.77.0 into $venv"
fi
mkdir -p .tools
rm -rf .tools/beam-venv
ln -sfn "$venv" .tools/beam-venv
