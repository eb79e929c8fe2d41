#!/usr/bin/env bash
# The GPU path in one command, sized for under 10 minutes on one GPU:
#   1. the Python stack: the torch already installed (its version is reported), else the pinned one (.venv);
#   2. tests/test_device.py on CUDA, and configs/thesis-smoke.yaml through every chapter on CUDA (papermill
#      under Snakemake), then the book built from it;
#   3. benchmarks/run.py --device cuda --setting full224 (the networks of Lamprou 2023 at 224 px), writing
#      benchmarks/results/latest-cuda-224.json and .md;
#   4. everything it measured (a timing per step, the logs, the benchmark results, the built book) under one
#      folder, OUT (default _build/gpu), so that one call on a lent machine brings it all back.
#
#   bash benchmarks/gpu.sh              run it (DEVICE=cuda; JOBS=4 runs four chapters at a time)
#   bash benchmarks/gpu.sh --dry-run    check every step without running it: the scripts and options exist,
#                                       the thesis-smoke workflow resolves, the device tests collect (CPU only)
set -euo pipefail
cd "$(dirname "$0")/.."
DRY_RUN=0
[ "${1:-}" = "--dry-run" ] && DRY_RUN=1
DEVICE="${DEVICE:-cuda}"
OUT="${OUT:-_build/gpu}"
mkdir -p "$OUT"
TIMES="$OUT/steps.tsv"
printf 'step\tseconds\tstatus\n' > "$TIMES"

# One step: its command, its log under $OUT, and its wall time in steps.tsv; a failed step is recorded and
# the next steps still run, so that one call reports everything that broke. The exit status says if any did.
FAILED=0
step() {
  local name="$1"; shift
  local start=$SECONDS status=ok
  echo "== $name: $*"
  if ! "$@" > "$OUT/$name.log" 2>&1; then status=failed; FAILED=1; fi
  printf '%s\t%s\t%s\n' "$name" "$((SECONDS - start))" "$status" >> "$TIMES"
  echo "   $status in $((SECONDS - start)) s (log: $OUT/$name.log)"
}

# 1. The stack: a machine that has torch keeps it (and says which); otherwise the pinned stack into .venv.
if python3 -c "import torch, torchvision, pytorch_grad_cam, snakemake, papermill, jupyter_book" 2> /dev/null \
    && [ ! -x .venv/bin/python ]; then
  PYTHON=python3
  python3 -m pip install --quiet --no-deps --no-build-isolation -e . > "$OUT/install.log" 2>&1 || true  # offline too
else
  [ "$DRY_RUN" = 1 ] && [ ! -x .venv/bin/python ] && { echo "dry run: no .venv, run make venv first" >&2; exit 2; }
  make venv > "$OUT/install.log" 2>&1
  PYTHON=.venv/bin/python
fi
BIN="$(dirname "$(command -v "$PYTHON")")"
export PATH="$(cd "$BIN" && pwd):$PATH"
"$PYTHON" - > "$OUT/environment.txt" <<'EOF'
import platform, torch, torchvision
print(f"python {platform.python_version()}, torch {torch.__version__}, torchvision {torchvision.__version__}")
print(f"cuda available: {torch.cuda.is_available()}"
      + (f", {torch.cuda.get_device_name(0)}, CUDA {torch.version.cuda}" if torch.cuda.is_available() else ""))
EOF
cat "$OUT/environment.txt"
if [ "$DRY_RUN" = 0 ] && [ "$DEVICE" = cuda ] && ! "$PYTHON" -c "import torch; assert torch.cuda.is_available()"; then
  echo "no CUDA device here; run with DEVICE=cpu (a slow CPU run) or --dry-run" >&2
  exit 2
fi

SMOKE_DIR="$OUT/thesis-smoke"
mkdir -p "$SMOKE_DIR"
SNAKE=(snakemake --snakefile "$PWD/Snakefile" --directory "$SMOKE_DIR" --configfile "$PWD/configs/thesis-smoke.yaml"
       --config "device=$DEVICE" --cores "${JOBS:-1}")
if [ "$DRY_RUN" = 1 ]; then
  step device-tests "$PYTHON" -m pytest --collect-only -q tests/test_device.py
  step thesis-smoke "${SNAKE[@]}" --dry-run
  step benchmark "$PYTHON" benchmarks/run.py --help
  grep -q -- "--setting" "$OUT/benchmark.log" && grep -q "full224" "$OUT/benchmark.log" || FAILED=1
else
  step device-tests env CI=true "$PYTHON" -m pytest -q -p no:cacheprovider tests/test_device.py
  step thesis-smoke "${SNAKE[@]}" --quiet
  step thesis-smoke-book "$PYTHON" -m camfaith.pipeline book "$SMOKE_DIR/results/thesis-smoke/notebooks"
  [ -d _build/html ] && cp -r _build/html "$OUT/thesis-smoke-book"
  grep -h "^[0-9a-z_]* .*: [0-9]* s ->" "$OUT/thesis-smoke.log" > "$OUT/chapters.txt" || true
  step benchmark "$PYTHON" benchmarks/run.py --device "$DEVICE" --setting full224 --archs vgg19,resnet50,resnet34
  for suffix in json md; do
    [ -f "benchmarks/results/latest-$DEVICE-224.$suffix" ] && cp "benchmarks/results/latest-$DEVICE-224.$suffix" "$OUT/"
  done
fi
cat "$TIMES"
exit "$FAILED"
