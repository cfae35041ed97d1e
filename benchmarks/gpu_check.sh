#!/usr/bin/env bash
# The GPU check: one call on a lent GPU machine, under 9 minutes with the install, that runs
# every CUDA-only test (`pytest -m cuda`), the trainer's step at 224 px, batch 32, bf16, eager,
# compiled and as CUDA graphs (`torch.compile(mode="reduce-overhead")`), the loader at 16
# workers, and a learning run of over 3 minutes with its validation L1 against copying the
# source; it prints one table and writes it to $OUT/gpu_check.tsv (and .txt), with every
# part's output in $OUT/gpu_check.log and the learning run's metrics.json beside them.
#
#   benchmarks/gpu_check.sh [--toy] [--only part,...]        (make gpu-check)
#
# --toy (or GLG_GPU_CHECK_TOY=1): the tests' tiny sizes, a minute on a 2-core CPU, the same
# table; without CUDA the CUDA parts say "skipped: no CUDA". A part that fails or runs out of
# time is a row saying why, and the next part runs. Environment: OUT (default ./gpu_check_out),
# GLG_PYTHON (the interpreter; no install), GLG_GPU_CHECK_SECONDS (the budget, default 540:
# give the call 600), GLG_WHEELS (default .whl, see below). `--only learn,train_cudagraphs`
# runs those parts (and the data they read) again.
#
# Install: `make sync` (uv, the locked .venv). A GPU machine that reaches no package registry
# fails it, said in the setup row; then the image's python3 runs the parts, with the wheels
# in $GLG_WHEELS installed first: `make gpu-wheels` downloads here what the image lacks, and
# the device call carries `.whl`.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

TOY=${GLG_GPU_CHECK_TOY:-}
ONLY=""
while (($#)); do
    case $1 in
        --toy) TOY=1 ;;
        --only) ONLY=",$2,"; shift ;;
        *) echo "usage: $0 [--toy] [--only part,part]" >&2; exit 2 ;;
    esac
    shift
done
PARTS=(setup cuda_tests data train_eager loader learn train_compiled train_cudagraphs)
OUT=${OUT:-$ROOT/gpu_check_out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
TABLE=$OUT/gpu_check.tsv LOG=$OUT/gpu_check.log
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir "$WORK/rows"
START=$SECONDS DEADLINE=$((SECONDS + ${GLG_GPU_CHECK_SECONDS:-540}))
: >"$LOG"

if [[ -n $TOY ]]; then  # the tests' sizes
    # one thread: toy sizes gain nothing from more, and on a busy shared CPU they spin-wait
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
    IMAGE_PX=56 BATCH=2 TRAIN_STEPS=2 TRAIN_WORKERS=0 LOADER_WORKERS=2 LOADER_BATCHES=3
    LEARN_SECONDS=0 TOY_FLAG=--toy
else  # the issue's: 224 px, batch 32, 16 loader workers, over 3 minutes of learning
    IMAGE_PX=224 BATCH=32 TRAIN_STEPS=10 TRAIN_WORKERS=8 LOADER_WORKERS=16 LOADER_BATCHES=20
    LEARN_SECONDS=190 TOY_FLAG=
fi

row() {  # part status seconds result: the part's row of the table, and a line of progress
    local result=${4//$'\t'/ }
    result=${result//$'\n'/ }
    printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$result" >"$WORK/rows/$1"
    printf '[gpu_check] %-16s %-7s %4ss  %s\n' "$1" "$2" "$3" "$result"
}

wanted() {  # the data part is wanted by every part that reads it
    [[ -z $ONLY || $ONLY == *",$1,"* ]] && return 0
    [[ $1 == data && $ONLY =~ ,(train_|loader|learn) ]]
}

# run_part NAME CAP COMMAND...: COMMAND under `timeout` (CAP s, or what is left of the budget),
# its output in the log, its row from the last line it wrote to $WORK/NAME.row, else from
# the timeout or its last line of output.
run_part() {
    local name=$1 cap=$2 left limit started rc result
    shift 2
    left=$((DEADLINE - SECONDS))
    limit=$((cap < left ? cap : left))
    if ((limit < 15)); then
        row "$name" skipped 0 "out of time: ${left} s of the budget left"
        return 1
    fi
    printf '\n===== %s (limit %s s): %s\n' "$name" "$limit" "$*" >>"$LOG"
    started=$SECONDS
    timeout --kill-after=10 "$limit" "$@" >"$WORK/$name.out" 2>&1
    rc=$?
    cat "$WORK/$name.out" >>"$LOG"
    if ((rc == 0)) && [[ -s $WORK/$name.row ]]; then
        row "$name" ok $((SECONDS - started)) "$(tail -n 1 "$WORK/$name.row")"
        return 0
    fi
    if ((rc == 124 || rc == 137)); then
        result="timeout after $limit s"
    else
        result="exit $rc: $(grep -v '^[[:space:]]*$' "$WORK/$name.out" | tail -n 1 | cut -c1-200)"
    fi
    row "$name" failed $((SECONDS - started)) "$result"
    return 1
}

# --- setup: the environment -------------------------------------------------------------------
started=$SECONDS
export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
if [[ -n ${GLG_PYTHON:-} ]]; then
    PY=$GLG_PYTHON how="GLG_PYTHON, no install"
elif [[ -n $TOY ]]; then  # never re-sync a shared checkout's .venv for a toy run
    PY=$([[ -x .venv/bin/python ]] && echo .venv/bin/python || echo python3)
    how="toy: make sync not run"
else
    printf '\n===== setup: make sync\n' >>"$LOG"
    # no registry: fail in seconds, not after pip's and uv's default retries
    if PIP_DEFAULT_TIMEOUT=5 PIP_RETRIES=0 UV_HTTP_TIMEOUT=5 timeout 90 make sync >>"$LOG" 2>&1
    then
        PY=.venv/bin/python how="make sync: the locked .venv"
    else
        PY=python3 how="make sync failed (no package registry?): the image's python3"
        wheels=${GLG_WHEELS:-.whl}
        if compgen -G "$wheels/*.whl" >/dev/null; then
            if python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
                --upgrade --target "$WORK/site" "$wheels"/*.whl >>"$LOG" 2>&1; then
                export PYTHONPATH=$WORK/site:$PYTHONPATH
                how+=" + $(ls "$wheels"/*.whl | wc -l) wheels from $wheels"
            else
                how+="; installing $wheels failed (log)"
            fi
        else
            how+=", no $wheels: make gpu-wheels, then carry .whl"
        fi
    fi
fi
probe=$("$PY" - <<'EOF' 2>>"$LOG"
import importlib.util, platform, torch
cuda = torch.cuda.is_available()
def found(module):
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False
missing = [m for m in ("dvclive", "dlib", "typer", "psutil", "pytest") if not found(m)]
words = ["cuda" if cuda else "cpu", f"python {platform.python_version()},",
         f"torch {torch.__version__},", torch.cuda.get_device_name() if cuda else "no CUDA"]
print(" ".join(words + ([f"(missing: {', '.join(missing)})"] if missing else [])))
EOF
)
if [[ -z $probe ]]; then
    row setup failed $((SECONDS - started)) "$how; $PY cannot import torch (log)"
    CUDA=""
else
    CUDA=$([[ $probe == cuda* ]] && echo 1)
    row setup ok $((SECONDS - started)) "$how; ${probe#* }"
fi

skip_cuda() {
    if [[ -n $TOY ]]; then
        row "$1" skipped 0 "no CUDA"
    else
        row "$1" skipped 0 "no CUDA (a CPU runs this check with --toy)"
    fi
}
skip_only() { row "$1" skipped 0 "not in --only"; }

cuda_tests() {  # pytest -m cuda over the files given; its summary line is the row
    "$PY" -m pytest -m cuda -q -p no:cacheprovider --continue-on-collection-errors "$@" \
        | tee "$WORK/cuda_tests.pytest"
    local rc=${PIPESTATUS[0]}
    grep -E 'passed|failed|error|skipped|no tests ran' "$WORK/cuda_tests.pytest" | tail -n 1 \
        | tr -d = | sed 's/^ *//; s/ *$//' >"$WORK/cuda_tests.row"
    return "$rc"
}
export -f cuda_tests
export PY WORK

# --- the CUDA-only tests, while the data is made ---------------------------------------------
if ! wanted data; then
    skip_only data
elif [[ -z $probe ]]; then
    row data skipped 0 "no python with torch (the setup row)"
elif [[ -z $CUDA && -z $TOY ]]; then
    skip_cuda data
else
    run_part data 150 "$PY" benchmarks/gpu_check.py data --out "$WORK/data" \
        --image-px "$IMAGE_PX" --row "$WORK/data.row" $TOY_FLAG &
    data_job=$!
fi
if ! wanted cuda_tests; then
    skip_only cuda_tests
elif [[ -z $CUDA ]]; then
    skip_cuda cuda_tests
else
    mapfile -t cuda_files < <(grep -l 'pytest.mark.cuda' tests/test_*.py)
    run_part cuda_tests 150 bash -c 'cuda_tests "$@"' cuda_tests "${cuda_files[@]}"
fi
[[ -n ${data_job:-} ]] && wait "$data_job"
HAVE_DATA=$([[ -s $WORK/data/params.yaml && -d $WORK/data/prepared ]] && echo 1)

# train_part NAME [COMPILE_MODE]
train_part() {
    if ! wanted "$1"; then skip_only "$1"; return; fi
    if [[ -z $HAVE_DATA ]]; then row "$1" skipped 0 "no data (the data row)"; return; fi
    local mode=()
    [[ -n ${2:-} ]] && mode=(--compile "$2")
    run_part "$1" "${3:-120}" "$PY" benchmarks/gpu_check.py train --data "$WORK/data" \
        --batch "$BATCH" --steps "$TRAIN_STEPS" --workers "$TRAIN_WORKERS" "${mode[@]}" \
        --row "$WORK/$1.row"
}

if [[ -n $CUDA || -n $TOY ]]; then
    train_part train_eager "" 90
else
    skip_cuda train_eager
fi

if ! wanted loader; then
    skip_only loader
elif [[ -z $CUDA && -z $TOY ]]; then
    skip_cuda loader
elif [[ -z $HAVE_DATA ]]; then
    row loader skipped 0 "no data (the data row)"
else
    run_part loader 60 "$PY" benchmarks/gpu_check.py loader --data "$WORK/data" \
        --batch "$BATCH" --workers "$LOADER_WORKERS" --batches "$LOADER_BATCHES" \
        --row "$WORK/loader.row"
fi

if ! wanted learn; then
    skip_only learn
elif [[ -z $CUDA && -z $TOY ]]; then
    skip_cuda learn
elif [[ -z $HAVE_DATA ]]; then
    row learn skipped 0 "no data (the data row)"
else
    # steps for LEARN_SECONDS from the eager step's time, when that row has one
    ms=$(sed -n 's/.*(\([0-9]*\) ms a step).*/\1/p' "$WORK/train_eager.row" 2>/dev/null)
    step_seconds=()
    [[ -n $ms ]] && step_seconds=(--step-seconds "$(awk "BEGIN {print $ms / 1000}")")
    run_part learn $((LEARN_SECONDS + 120)) "$PY" benchmarks/gpu_check.py learn \
        --data "$WORK/data" --work "$WORK/learn" --batch "$BATCH" --seconds "$LEARN_SECONDS" \
        "${step_seconds[@]}" $TOY_FLAG --row "$WORK/learn.row"
    cp "$WORK/learn/metrics/metrics.json" "$OUT/learn_metrics.json" 2>/dev/null
fi

if [[ -n $CUDA ]]; then
    train_part train_compiled default 150
    train_part train_cudagraphs reduce-overhead 150
else
    skip_cuda train_compiled
    skip_cuda train_cudagraphs
fi

# --- the table -------------------------------------------------------------------------------
printf 'part\tstatus\tseconds\tresult\n' >"$TABLE"
for part in "${PARTS[@]}"; do
    cat "$WORK/rows/$part" 2>/dev/null \
        || printf '%s\tfailed\t0\tno row: the script skipped it by mistake\n' "$part"
done >>"$TABLE"
if command -v column >/dev/null; then
    column -t -s $'\t' "$TABLE" >"$OUT/gpu_check.txt"
else
    cp "$TABLE" "$OUT/gpu_check.txt"
fi
echo
echo "gpu_check: $((SECONDS - START)) s${TOY:+ (toy)}; table $TABLE, log $LOG"
cat "$OUT/gpu_check.txt"
