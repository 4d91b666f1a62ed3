#!/usr/bin/env bash
# Does comsim work from its wheel, outside the source tree? Builds the wheel, installs it with
# the `plot` extra into a fresh virtual environment in a temporary directory, and runs from
# there:
#   comsim bench --quick --json out.json --plot out.png
#   comsim trace scenario:scenario --format text|mermaid|chrome -o ...
# checking that each output exists (and the JSON parses). Not part of the test suite: it
# needs PyPI (hatchling to build; rich, anyio, structlog, matplotlib to install).
#
#   scripts/check_wheel.sh            # PYTHON=python3.12 scripts/check_wheel.sh; KEEP=1 keeps
#                                     # the temporary directory
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/comsim-wheel.XXXXXX")"
if [[ "${KEEP:-0}" == "1" ]]; then
    echo "keeping $WORK"
else
    trap 'rm -rf "$WORK"' EXIT
fi
step() { printf '\n== %s\n' "$*"; }
fail() { echo "FAILED: $*" >&2; exit 1; }

step "building the wheel from $ROOT"
"$PY" -m pip wheel "$ROOT" --no-deps --quiet --disable-pip-version-check -w "$WORK/dist"
WHEEL="$(ls "$WORK"/dist/comsim-*.whl)"
echo "$(basename "$WHEEL")"
"$PY" -m zipfile -l "$WHEEL" | awk '{print $1}' | grep -E '^comsim/_bench/|^comsim/_cli' \
    || fail "the wheel has no comsim/_bench or comsim/_cli"

step "a fresh virtual environment, the wheel installed with [plot]"
"$PY" -m venv "$WORK/venv"
VPY="$WORK/venv/bin/python"
"$VPY" -m pip install --quiet --disable-pip-version-check "${WHEEL}[plot]"
"$VPY" -m pip list --disable-pip-version-check 2>/dev/null \
    | grep -iE '^(comsim|rich|matplotlib|anyio|structlog) '

RUN="$WORK/run"   # outside the source tree: only the installed comsim can be imported
mkdir -p "$RUN"
cd "$RUN"
"$VPY" -c 'import comsim, sys; p = comsim.__file__; print("comsim from", p);
sys.exit(p.startswith(sys.argv[1]))' "$ROOT" || fail "comsim imported from the source tree"

step "comsim bench --quick --json out.json --plot out.png"
"$WORK/venv/bin/comsim" bench --quick --json out.json --plot out.png
[[ -s out.json ]] || fail "no out.json"
[[ -s out.png ]] || fail "no out.png"
"$VPY" - <<'PY'
import json
d = json.load(open("out.json"))
need = {"python", "platform", "cpu_count", "comsim_version", "n", "rounds", "rows"}
missing = need - set(d)
assert not missing, f"out.json lacks {missing}"
assert d["rows"] and all(r["p50_us"] > 0 and r["ratio_p50"] > 0 for r in d["rows"])
print(f"out.json: {len(d['rows'])} rows, keys {sorted(d)}")
PY
"$VPY" -c 'import sys; b = open("out.png", "rb").read(); assert b[:8] == b"\x89PNG\r\n\x1a\n";
print(f"out.png: {len(b)} bytes, a PNG")'

step "comsim trace on a tiny scenario"
cat > scenario.py <<'PY'
import comsim


class ICalc(comsim.Interface):
    async def Add(self, a: int, b: int) -> int: ...


class Calc(comsim.CoClass, ICalc):
    async def Add(self, a: int, b: int) -> int:
        return a + b


async def scenario(rt: comsim.Runtime) -> None:
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")

    async def make() -> comsim.MarshalStream:
        return comsim.marshal_interface(Calc(), ICalc)

    stream = await b.run(make)

    async def call() -> int:
        return await comsim.unmarshal_interface(stream).Add(1, 2)

    assert await a.run(call) == 3
PY
for fmt in text mermaid chrome; do
    out="trace.$fmt"
    "$WORK/venv/bin/comsim" trace scenario:scenario --format "$fmt" -o "$out" \
        || fail "comsim trace --format $fmt"
    [[ -s "$out" ]] || fail "no $out"
    echo "$out: $(wc -l < "$out") lines; first: $(head -c 100 "$out" | head -n 1)"
done
"$VPY" -c 'import json; d = json.load(open("trace.chrome")); print("trace.chrome: JSON,",
type(d).__name__)'
"$WORK/venv/bin/comsim" trace scenario:scenario | head -n 5

step "all good: comsim bench and comsim trace work from the wheel"
