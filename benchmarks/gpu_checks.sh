#!/usr/bin/env bash
# Every GPU check of issue 8 in one run, for a session with a lent device: at most 9 min 15 s by its time limits,
# so it fits one 10-minute device command. The CUDA tests, all-pairs synthesis of a whole 1 mm brain subject at
# paper size (eager and compiled, planned batch), the decode benchmark, and the training throughput with the breast
# 4D peak memory. Writes $OUT/gpu_checks.log; copy its figures into benchmarks/RESULTS.md with the date and device
# it prints.
#
# The device machine has PyTorch but not MONAI and our other dependencies. Fetch them here once, as wheels
# (pure Python, so the Python 3.12 there takes them):
#     echo /.whl/ >> .git/info/exclude
#     .venv/bin/python -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#         --platform manylinux_2_17_x86_64 -d .whl monai==1.6.1 pytorch-ignite nibabel nilearn pydicom
# then run, with `.whl` carried:  bash benchmarks/gpu_checks.sh
set -uo pipefail
OUT=${OUT:-/tmp/gpu_checks}
mkdir -p "$OUT"
log="$OUT/gpu_checks.log"
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD" PYTHONUNBUFFERED=1
{
    date -u +"%Y-%m-%d %H:%M UTC"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    python3 -c "import monai; from monai_seq2seq.core.machine import describe_machine
print(describe_machine('cuda') + ', monai', monai.__version__)"
    git log -1 --format="commit %h %s" 2>/dev/null
} 2>&1 | tee "$log"

step() {  # step <seconds> <command...>: a stuck or failing step does not stop the others
    local limit=$1
    shift
    echo "== $*" | tee -a "$log"
    timeout "$limit" "$@" 2>&1 | grep -v -E "Warning|warn\(" | tee -a "$log"
    echo "-- exit ${PIPESTATUS[0]}" | tee -a "$log"
}

step 90 python3 -m pytest -q -p no:cacheprovider tests/test_inference_planner.py tests/test_inference_synthesis.py \
    tests/test_networks_seq2seq.py
step 90 python3 benchmarks/bench_allpairs.py --config paper --spacing 1.0 --loop-slices 8 --batch-size auto
step 150 python3 benchmarks/bench_allpairs.py --config paper --spacing 1.0 --loop-slices 8 --batch-size auto --compile
step 45 python3 benchmarks/bench_decode.py --repeats 9
step 180 python3 benchmarks/bench_train.py --breast --iterations 10
