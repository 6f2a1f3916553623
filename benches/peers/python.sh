#!/usr/bin/env bash
# Time the Python package `agent-coherence` 0.15.0 (import `ccs`), the nearest existing tool.
#
# Usage: benches/peers/python.sh [OUT.json]
#   Creates a virtual environment under target/peers/ (not committed), installs
#   agent-coherence[langgraph]==0.15.0 (the langgraph extra is what its CCSStore imports), and
#   runs bench_peer.py; JSON goes to OUT.json or stdout, progress to stderr.
# Environment: PEER_PAYLOADS (default 64,4096,65536), PEER_BATCHES (15), PEER_BATCH_MS (20),
#   PEER_HTTP=0 to skip the cross-process coordinator, PYTHON (default python3).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${PEER_VENV:-$root/target/peers/venv}"
python="${PYTHON:-python3}"
spec='agent-coherence[langgraph]==0.15.0'

if [[ ! -x "$venv/bin/python" ]]; then
    mkdir -p "$(dirname "$venv")"
    "$python" -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import importlib.metadata as m, sys; sys.exit(m.version("agent-coherence") != "0.15.0")' 2>/dev/null \
    || ! "$venv/bin/python" -c 'import langgraph.store.base' 2>/dev/null; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$spec" >&2
fi

# The package's coordinator writes a state directory under a temp workspace; keep it off the repo.
export TMPDIR="${TMPDIR:-/tmp}"
exec "$venv/bin/python" "$here/bench_peer.py" "$@"
