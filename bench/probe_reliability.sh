#!/usr/bin/env bash
# Runs each failure of issue 24, the earlier reliability ones and issue 41's first day (phone photos,
# nstvid-eval on a part, odd media, -o DIR/, cron's exit codes and report page, JSON logs, help,
# install from a clone) through the real `nstvid`
# command on the sample media at tiny sizes, and prints OK or BAD per probe. Exit status: the
# number of BAD probes (0: all OK).
#
#   bench/probe_reliability.sh         # the quick probes: 1-2 minutes on 2 idle CPU cores before
#                                      # issue 41 added 13 probes (about a dozen runs; not timed idle)
#   bench/probe_reliability.sh --ray   # the Ray probes that start a private instance (make test-cluster)
#
# NSTVID=path/to/nstvid picks the command (default: .venv/bin/nstvid of this checkout).
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
NSTVID=${NSTVID:-$ROOT/.venv/bin/nstvid}
PY=$(dirname "$NSTVID")/python
MEDIA=$ROOT/sample_media
STYLE=$MEDIA/starry_night.jpg
WORK=$(mktemp -d /tmp/nstvid-probe-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
export NSTVID_CACHE_DIR=$WORK/cache
TINY=(--style "$STYLE" --size 32 --scales 1 --iterations 2 --frame-iterations 1 --log-format plain)
BAD=0

ok() { echo "OK   $1"; }
bad() { echo "BAD  $1: $2"; BAD=$((BAD + 1)); }
# check NAME CONDITION DETAIL: OK when the condition (a bash expression) holds.
check() { if eval "$2"; then ok "$1"; else bad "$1" "$3"; fi; }
ffmpeg() { "$PY" -c "import imageio_ffmpeg, os, sys; os.execv(imageio_ffmpeg.get_ffmpeg_exe(), ['ffmpeg', *sys.argv[1:]])" "$@"; }
frames() { "$PY" -c "import sys; from nstvid.pipeline.media.video import read_frames; print(sum(1 for _ in read_frames(sys.argv[1])))" "$1"; }
one_line() { [ "$(grep -c . "$1")" -eq 1 ]; }
# a short clip of N frames of pan.mp4, with its sound
clip() { ffmpeg -y -v error -i "$MEDIA/pan.mp4" -frames:v "$2" -c:v libx264 -crf 10 -c:a aac -shortest "$1"; }
# a 127.0.0.1 port nothing listens on
closed_port() { "$PY" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"; }
# a Ray temp folder whose record of this machine's cluster names a closed port
stale_record() {
    local dir; dir=$(mktemp -d /tmp/nstvid-ray-XXXXXX)
    mkdir -p "$dir/ray" && echo "127.0.0.1:$(closed_port)" > "$dir/ray/ray_current_cluster"
    echo "$dir"
}

ray_probes() {
    local dir before rc
    dir=$(stale_record); before=$(cat "$dir/ray/ray_current_cluster")
    env -u RAY_ADDRESS RAY_TMPDIR="$dir" timeout 300 "$NSTVID" "$MEDIA/chelsea.png" "${TINY[@]}" -o "$WORK/ray.png" \
        --engine ray --ray-address local > "$WORK/ray.out" 2> "$WORK/ray.err"; rc=$?
    check "--ray-address local with a stale record: own instance, record untouched" \
        '[ $rc -eq 0 ] && grep -q "stylised on Ray worker" "$WORK/ray.out" && [ "$(cat "$dir/ray/ray_current_cluster")" = "$before" ]' \
        "exit $rc: $(tail -1 "$WORK/ray.err")"
    rm -rf "$dir"
}

if [ "${1:-}" = "--ray" ]; then
    ray_probes
    exit "$BAD"
fi

# 1. Two runs on one video output: the second exits 3 and the first finishes with every frame.
clip "$WORK/pan4.mp4" 4
"$NSTVID" "$WORK/pan4.mp4" "${TINY[@]}" -o "$WORK/one.mp4" > "$WORK/a.out" 2>&1 &
A=$!
for _ in $(seq 600); do [ -f "$WORK/.one.mp4.nstvid-work/meta.json" ] && break; sleep 0.05; done
kill -STOP $A
"$NSTVID" "$WORK/pan4.mp4" "${TINY[@]}" --size 48 -o "$WORK/one.mp4" > /dev/null 2> "$WORK/b.err"; rc=$?
kill -CONT $A
wait $A; rc_a=$?
check "second run on one video output exits 3, the first finishes" \
    '[ $rc -eq 3 ] && grep -q "pid $A" "$WORK/b.err" && [ $rc_a -eq 0 ] && [ "$(frames "$WORK/one.mp4")" = 4 ]' \
    "second exit $rc, first exit $rc_a"

# 2. --ray-address auto with a stale record says the record is stale (fast: nothing starts).
if "$PY" -c "import ray" 2> /dev/null; then
    dir=$(stale_record)
    env -u RAY_ADDRESS RAY_TMPDIR="$dir" timeout 60 "$NSTVID" "$MEDIA/chelsea.png" "${TINY[@]}" -o "$WORK/auto.png" \
        --engine ray --ray-address auto > /dev/null 2> "$WORK/auto.err"; rc=$?
    check "--ray-address auto with a stale record: exit 2 naming it stale" \
        '[ $rc -eq 2 ] && one_line "$WORK/auto.err" && grep -q stale "$WORK/auto.err"' "exit $rc: $(cat "$WORK/auto.err")"
    rm -rf "$dir"
    "$NSTVID" "$MEDIA/chelsea.png" "${TINY[@]}" -o "$WORK/far.png" --engine ray --ray-address 127.0.0.1:1 \
        > "$WORK/far.out" 2> "$WORK/far.err"; rc=$?
    check "--engine ray on an image checks the address (exit 2, before work)" \
        '[ $rc -eq 2 ] && one_line "$WORK/far.err" && [ ! -e "$WORK/far.png" ]' "exit $rc: $(cat "$WORK/far.err")"
else
    echo "--   Ray not installed: its probes skipped"
fi

# 3. A damaged resume frame is redone; no library line reaches stderr.
clip "$WORK/pan5.mp4" 5
"$NSTVID" "$WORK/pan5.mp4" "${TINY[@]}" -o "$WORK/five.mp4" --keep-frames > /dev/null 2>&1
frame="$WORK/.five.mp4.nstvid-work/frame_000002.png"
head -c "$(($(stat -c %s "$frame") / 2))" "$frame" > "$frame.cut" && mv "$frame.cut" "$frame"
rm -f "$WORK/five.mp4"
"$NSTVID" "$WORK/pan5.mp4" "${TINY[@]}" -o "$WORK/five.mp4" > "$WORK/five.out" 2> "$WORK/five.err"; rc=$?
check "a truncated resume frame is redone, every frame out, stderr clean" \
    '[ $rc -eq 0 ] && [ ! -s "$WORK/five.err" ] && [ "$(frames "$WORK/five.mp4")" = 5 ] && grep -q "stylised again" "$WORK/five.out"' \
    "exit $rc: $(head -2 "$WORK/five.err")"

# 4. A truncated folder manifest: the rerun exits 0, skips what was done and fails nothing.
mkdir -p "$WORK/in" && cp "$MEDIA/chelsea.png" "$WORK/in/cat.png" && cp "$WORK/pan4.mp4" "$WORK/in/clip.mp4"
"$NSTVID" "$WORK/in" "${TINY[@]}" -o "$WORK/out" > /dev/null 2>&1
head -c 40 "$WORK/out/.nstvid-manifest.json" > "$WORK/m" && mv "$WORK/m" "$WORK/out/.nstvid-manifest.json"
"$NSTVID" "$WORK/in" "${TINY[@]}" -o "$WORK/out" --report "$WORK/r.json" > "$WORK/m.out" 2>&1; rc=$?
check "a truncated manifest: rerun exits 0, redoes nothing, fails nothing" \
    '[ $rc -eq 0 ] && grep -q "\"done\": 0" "$WORK/r.json" && grep -q "\"failed\": 0" "$WORK/r.json"' \
    "exit $rc: $(grep -E "failed|summary" "$WORK/m.out" | head -3)"

# 5. Checks before work: codec and crf (exit 2, no frame stylised, nothing written).
for bad_option in "--codec nope264" "--crf 99"; do
    # shellcheck disable=SC2086 # the option and its value, split on purpose
    "$NSTVID" "$WORK/pan4.mp4" "${TINY[@]}" -o "$WORK/x.mp4" $bad_option > "$WORK/c.out" 2> "$WORK/c.err"; rc=$?
    check "$bad_option refused before work (exit 2)" \
        '[ $rc -eq 2 ] && one_line "$WORK/c.err" && ! grep -q "frame 1" "$WORK/c.out" && [ ! -e "$WORK/.x.mp4.nstvid-work" ]' \
        "exit $rc: $(cat "$WORK/c.err")"
done

# 6. Tests that edit a command line find the flag by name (make test-fp32 appends --precision).
found=$(grep -nE 'args\[:-[0-9]+\]' "$ROOT"/tests/*.py)
check "tests edit command lines by flag name, not position" '[ -z "$found" ]' "$found"

# 7. meta.json written whole or not at all (a write that fails mid-way: a file-size limit).
"$PY" - "$WORK/meta/out.mp4" > "$WORK/meta.out" 2>&1 <<'EOF'
import json, resource, signal, sys
from pathlib import Path
from nstvid.pipeline.video.workdir import WorkDir
Path(sys.argv[1]).parent.mkdir()
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))
key = {"version": 2, "frames": "x" * 4000}
try:
    WorkDir(Path(sys.argv[1]), key).open()
except Exception as e:
    print("refused:", e)
meta = Path(sys.argv[1]).with_name(".out.mp4.nstvid-work") / "meta.json"
print("partial" if meta.exists() and meta.read_text() != json.dumps(key, indent=1) else "whole or absent")
EOF
check "meta.json is never left cut short" 'grep -q "whole or absent" "$WORK/meta.out"' "$(cat "$WORK/meta.out")"

# Earlier ones: a folder's lock (exit 3 while held, taken over once its holder is gone), an
# existing output refused (exit 2), a truncated input (exit 4, its decodable frames written).
mkdir -p "$WORK/lockout"
"$PY" -c "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); fcntl.flock(fd, fcntl.LOCK_EX); time.sleep(60)" \
    "$WORK/lockout/.nstvid.lock" &
H=$!
sleep 1
"$NSTVID" "$WORK/in" "${TINY[@]}" -o "$WORK/lockout" > /dev/null 2> "$WORK/l.err"; rc=$?
kill $H; wait $H 2> /dev/null
check "a folder whose lock is held: exit 3, one line" '[ $rc -eq 3 ] && one_line "$WORK/l.err"' "exit $rc: $(cat "$WORK/l.err")"
echo '{"pid": 999999999, "host": "'"$(hostname)"'"}' > "$WORK/lockout/.nstvid.lock"
"$NSTVID" "$WORK/in" "${TINY[@]}" -o "$WORK/lockout" > "$WORK/l.out" 2>&1; rc=$?
check "a stale folder lock is taken over" '[ $rc -eq 0 ] && grep -q "stale lock" "$WORK/l.out"' "exit $rc"
"$NSTVID" "$WORK/pan4.mp4" "${TINY[@]}" -o "$WORK/one.mp4" > /dev/null 2> "$WORK/e.err"; rc=$?
check "an existing output is refused (exit 2)" '[ $rc -eq 2 ] && grep -q "output exists" "$WORK/e.err"' "exit $rc"
clip "$WORK/pan30.mp4" 30
ffmpeg -y -v error -i "$WORK/pan30.mp4" -c copy "$WORK/full.mkv"
head -c "$(($(stat -c %s "$WORK/full.mkv") / 2))" "$WORK/full.mkv" > "$WORK/cut.mkv"
"$NSTVID" "$WORK/cut.mkv" "${TINY[@]}" -o "$WORK/cut.mp4" > /dev/null 2> "$WORK/t.err"; rc=$?
check "a truncated input: exit 4, its decodable frames written" \
    '[ $rc -eq 4 ] && one_line "$WORK/t.err" && [ -s "$WORK/cut.mp4" ]' "exit $rc: $(cat "$WORK/t.err")"

# Issue 41, a new user's first day. clean FILE: no traceback in it.
clean() { ! grep -q Traceback "$1"; }
# size_codec FILE: "WIDTHxHEIGHT CODEC FRAMES" of a video
size_codec() { "$PY" -c "import sys; from nstvid.pipeline.media.video import probe; i = probe(sys.argv[1]); print(f'{i.width}x{i.height} {i.video_codec} {i.frame_count}')" "$1"; }
# Phone photos (AVIF by Pillow, HEIC by pillow-heif), an animated GIF that loops twice more, a text file.
mkdir -p "$WORK/phone"
"$PY" - "$WORK/phone" <<'EOF'
import sys
from pathlib import Path
from PIL import Image
folder = Path(sys.argv[1])
cat = Image.open("sample_media/chelsea.png").convert("RGB").resize((96, 64))
cat.save(folder / "cat.avif")
try:
    import pillow_heif
    pillow_heif.register_heif_opener()
    cat.save(folder / "cat.heic")
except ImportError:
    pass
frames = [cat.rotate(angle) for angle in (0, 5, 10)]
frames[0].save(folder / "wave.gif", save_all=True, append_images=frames[1:], duration=100, loop=2)
(folder / "notes.txt").write_text("holiday photos\n")
EOF
for photo in cat.avif cat.heic; do
    [ -e "$WORK/phone/$photo" ] || { echo "--   pillow-heif not installed: the $photo probe skipped"; continue; }
    mkdir -p "$WORK/photo-$photo"
    "$NSTVID" "$WORK/phone/$photo" "${TINY[@]}" -o "$WORK/photo-$photo/" > /dev/null 2> "$WORK/p.err"; rc=$?
    check "$photo is a photo: a .png out, written into the folder -o names" \
        '[ $rc -eq 0 ] && [ -s "$WORK/photo-$photo/cat_starry_night.png" ] && clean "$WORK/p.err"' "exit $rc: $(cat "$WORK/p.err")"
done
mkdir -p "$WORK/hide" && echo "raise ImportError('not installed')" > "$WORK/hide/pillow_heif.py"
if [ -e "$WORK/phone/cat.heic" ]; then
    PYTHONPATH="$WORK/hide" "$NSTVID" "$WORK/phone/cat.heic" "${TINY[@]}" -o "$WORK/h.png" > /dev/null 2> "$WORK/h.err"; rc=$?
    check "HEIC without pillow-heif: exit 2, one line naming what to install" \
        '[ $rc -eq 2 ] && one_line "$WORK/h.err" && grep -q "needs pillow-heif (pip install" "$WORK/h.err"' "exit $rc: $(cat "$WORK/h.err")"
fi
"$NSTVID" "$WORK/phone" "${TINY[@]}" -o "$WORK/phone-out" --report "$WORK/phone.json" > "$WORK/f.out" 2> "$WORK/f.err"; rc=$?
check "a folder walk counts and names what it leaves out (the GIF, the text file)" \
    '[ $rc -eq 0 ] && grep -q "left_out=2" "$WORK/f.out" && grep -q "\"wave.gif\"" "$WORK/phone.json" && clean "$WORK/f.err"' \
    "exit $rc: $(grep summary "$WORK/f.out") $(cat "$WORK/f.err")"

# nstvid-eval on a part: the span from the part's comment tag, or from the same flags; else one line.
EVAL=$(dirname "$NSTVID")/nstvid-eval
"$NSTVID" "$MEDIA/pan.mp4" "${TINY[@]}" --start 1s --duration 8f -o "$WORK/part.mp4" > /dev/null 2>&1
"$EVAL" temporal "$MEDIA/pan.mp4" "$WORK/part.mp4" > "$WORK/e.out" 2>&1; rc=$?
check "nstvid-eval on a part made with --start 1s --duration 8f (span recorded in the part)" \
    '[ $rc -eq 0 ] && grep -q "over 7 frame pairs" "$WORK/e.out" && clean "$WORK/e.out"' "exit $rc: $(cat "$WORK/e.out")"
ffmpeg -y -v error -i "$WORK/part.mp4" -map_metadata -1 -c copy "$WORK/bare.mp4"
"$EVAL" temporal "$MEDIA/pan.mp4" "$WORK/bare.mp4" > /dev/null 2> "$WORK/e.err"; rc=$?
check "nstvid-eval on a part without its record: exit 2, one line saying what to pass" \
    '[ $rc -eq 2 ] && one_line "$WORK/e.err" && grep -q -- "--start" "$WORK/e.err" && clean "$WORK/e.err"' "exit $rc: $(cat "$WORK/e.err")"
"$EVAL" temporal "$MEDIA/pan.mp4" "$WORK/bare.mp4" --start 1s --duration 8f > "$WORK/e.out" 2>&1; rc=$?
check "nstvid-eval --start 1s --duration 8f on it" '[ $rc -eq 0 ] && grep -q "over 7 frame pairs" "$WORK/e.out"' "exit $rc: $(cat "$WORK/e.out")"
"$EVAL" -h > "$WORK/eh.out" 2>&1; rc=$?
check "nstvid-eval -h and --version; its command list not cut at 'et al.'" \
    '[ $rc -eq 0 ] && ! grep -q "et al\.$" "$WORK/eh.out" && "$EVAL" --version | grep -q "^nstvid-eval "' "$(cat "$WORK/eh.out")"

# Odd media: a 1600x64 panorama at --size 200, a 9000x1 sliver, .webm, a GIF in and out.
ffmpeg -y -v error -f lavfi -i testsrc=size=1600x64:rate=10 -frames:v 3 -pix_fmt yuv420p "$WORK/pano.mp4"
"$NSTVID" "$WORK/pano.mp4" "${TINY[@]}" --size 200 -o "$WORK/pano_out.mp4" > /dev/null 2> "$WORK/o.err"; rc=$?
check "a 1600x64 panorama at --size 200 works (painted at 400x16, the short side VGG19 takes), back at 1600x64" \
    '[ $rc -eq 0 ] && [ "$(size_codec "$WORK/pano_out.mp4")" = "1600x64 h264 3" ] && clean "$WORK/o.err"' "exit $rc: $(cat "$WORK/o.err")"
"$PY" -c "import cv2, numpy, sys; cv2.imwrite(sys.argv[1], numpy.full((1, 9000, 3), 128, numpy.uint8))" "$WORK/sliver.png"
"$NSTVID" "$WORK/sliver.png" "${TINY[@]}" -o "$WORK/sliver_out.png" > /dev/null 2> "$WORK/o.err"; rc=$?
check "a 9000x1 sliver: exit 2, one line naming the smallest short side" \
    '[ $rc -eq 2 ] && one_line "$WORK/o.err" && grep -q "at least 16 px" "$WORK/o.err"' "exit $rc: $(cat "$WORK/o.err")"
"$NSTVID" "$WORK/pan4.mp4" "${TINY[@]}" -o "$WORK/out.webm" > /dev/null 2> "$WORK/o.err"; rc=$?
check "-o out.webm with the default codec is VP9" \
    '[ $rc -eq 0 ] && [ "$(size_codec "$WORK/out.webm" | cut -d" " -f2)" = vp9 ] && clean "$WORK/o.err"' "exit $rc: $(cat "$WORK/o.err")"
"$NSTVID" "$WORK/phone/wave.gif" "${TINY[@]}" -o "$WORK/out.gif" > /dev/null 2> "$WORK/o.err"; rc=$?
loops=$("$PY" -c "import sys; from nstvid.pipeline.media.video import gif_loop; print(gif_loop(sys.argv[1]))" "$WORK/out.gif" 2>&1)
check "an animated GIF in and out: 3 frames at its own 96x64, its loop count kept" \
    '[ $rc -eq 0 ] && [ "$(size_codec "$WORK/out.gif")" = "96x64 gif 3" ] && [ "$loops" = 2 ] && clean "$WORK/o.err"' \
    "exit $rc, loop $loops: $(cat "$WORK/o.err")"

# Cron: --max-runtime that leaves files exits 75; a rerun with nothing to do keeps the night's page.
mkdir -p "$WORK/night" && cp "$MEDIA/chelsea.png" "$WORK/night/cat.png"
NIGHT=("$WORK/night" "${TINY[@]}" -o "$WORK/night-out" --report "$WORK/night.html")
"$NSTVID" "${NIGHT[@]}" --max-runtime 0 > "$WORK/n1.out" 2>&1; rc1=$?
"$NSTVID" "${NIGHT[@]}" > "$WORK/n2.out" 2>&1; rc2=$?
sum=$(md5sum < "$WORK/night.html")
"$NSTVID" "${NIGHT[@]}" > "$WORK/n3.out" 2>&1; rc3=$?
check "--max-runtime with files left exits 75; done exits 0; a rerun with nothing to do keeps the page" \
    '[ $rc1 -eq 75 ] && [ $rc2 -eq 0 ] && [ $rc3 -eq 0 ] && [ "$(md5sum < "$WORK/night.html")" = "$sum" ] && grep -q "left as the last run that did work" "$WORK/n3.out"' \
    "exits $rc1 $rc2 $rc3: $(tail -1 "$WORK/n3.out")"

# JSON logs: a fatal error (here a missing input, and an option typer refuses) is one JSON line on
# stdout with level, code and an ISO 8601 time; nothing on stderr.
json_error() { "$PY" -c "import datetime, json, sys; lines = open(sys.argv[1]).read().splitlines(); x = json.loads(lines[0]); assert len(lines) == 1 and x['level'] == 'error' and x['code'] == sys.argv[2] and datetime.datetime.fromisoformat(x['time']).utcoffset() is not None" "$@" 2> /dev/null; }
"$NSTVID" "$WORK/nope.png" "${TINY[@]}" --log-format json > "$WORK/j.out" 2> "$WORK/j.err"; rc=$?
check "--log-format json: a refused input is one JSON line (level error, code error.input), stderr empty" \
    '[ $rc -eq 2 ] && [ ! -s "$WORK/j.err" ] && json_error "$WORK/j.out" error.input' "exit $rc: $(cat "$WORK/j.out" "$WORK/j.err")"
"$NSTVID" "$MEDIA/chelsea.png" --bogus --log-format json > "$WORK/j.out" 2> "$WORK/j.err"; rc=$?
check "--log-format json: an unknown option is one JSON line too (code error.usage)" \
    '[ $rc -eq 2 ] && [ ! -s "$WORK/j.err" ] && json_error "$WORK/j.out" error.usage' "exit $rc: $(cat "$WORK/j.out" "$WORK/j.err")"

# Help: no types leaking from typer (<bool> on switches, list[Path], {input}); a readable usage line.
{ COLUMNS=100 "$NSTVID" --help; COLUMNS=100 "$EVAL" --help; COLUMNS=100 "$EVAL" temporal --help; } > "$WORK/help.out" 2>&1
leaks=$(grep -oE '<bool>|list\[|Path\]|\{input\}|<path>|<str>' "$WORK/help.out" | sort -u | tr '\n' ' ')
check "nstvid and nstvid-eval help: no <bool>, list[Path] or {input}; usage 'nstvid [OPTIONS] INPUT'" \
    '[ -z "$leaks" ] && grep -q "Usage: nstvid \[OPTIONS\] INPUT" "$WORK/help.out"' "leaks: $leaks"

# Install from a clone: no command names an index package; LICENSE, CHANGELOG; the Dockerfile's
# COPY sources exist (it is not built here).
named=$(grep -rn "nstvid\[" --include=*.py --include=*.md --include=Makefile --include=Dockerfile . 2> /dev/null | grep -v "^./.venv")
copied=$(awk '/^COPY /{for (i = 2; i < NF; i++) print $i}' Dockerfile | while read -r f; do [ -e "$f" ] || echo "$f"; done)
check "install commands work from a clone; LICENSE, CHANGELOG.md, the Dockerfile's files present" \
    '[ -z "$named" ] && [ -s LICENSE ] && [ -s CHANGELOG.md ] && [ -z "$copied" ]' "$named $copied"

exit "$BAD"
