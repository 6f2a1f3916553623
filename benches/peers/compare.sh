#!/usr/bin/env bash
# One run, side by side: our `ccs bench ops` and the Python package agent-coherence 0.15.0.
#
# Usage: benches/peers/compare.sh [PAYLOAD ...]      (default: 64 4096 65536)
# Environment: as python.sh (PEER_BATCHES, PEER_BATCH_MS, PEER_HTTP=0, ...); OPS_ARGS adds
#   arguments to `ccs bench ops` (e.g. "--samples 500" for a quick run).
# If `ccs bench ops` is missing or fails, the table falls back to criterion's results in
# target/criterion (from `cargo bench --bench ops`) for the same ops and payloads.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$root/target/peers/compare"
mkdir -p "$out"
payloads=("$@")
[[ ${#payloads[@]} -gt 0 ]] || payloads=(64 4096 65536)
export PEER_PAYLOADS
PEER_PAYLOADS="$(IFS=,; echo "${payloads[*]}")"

cd "$root"
echo "== agent-coherence (Rust) $(git describe --always --dirty 2>/dev/null || echo '?') vs agent-coherence-py 0.15.0"
echo "machine: nproc $(nproc), CPU $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), kernel $(uname -r)"
echo "rustc: $(rustc --version)"

cargo build --quiet --release -p ccs-cli 2>"$out/build.err" \
    || echo "note: ccs-cli does not build (see $out/build.err)" >&2
ours=()
for p in "${payloads[@]}"; do
    f="$out/ops-$p.json"
    # shellcheck disable=SC2086 # OPS_ARGS is a list of words
    if cargo run --quiet --release -p ccs-cli -- bench ops --payload "$p" --json ${OPS_ARGS:-} >"$f" 2>"$out/ops-$p.err"; then
        ours+=(--ours "$f")
    else
        echo "note: \`ccs bench ops --payload $p --json\` failed (see $out/ops-$p.err); using target/criterion if present" >&2
    fi
done

"$here/python.sh" "$out/peer.json"
echo "python: $("$root/target/peers/venv/bin/python" --version 2>&1), agent-coherence $("$root/target/peers/venv/bin/python" -c 'import importlib.metadata as m; print(m.version("agent-coherence"))')"
echo
python3 "$here/compare.py" --peer "$out/peer.json" "${ours[@]}" --criterion "$root/target/criterion"
