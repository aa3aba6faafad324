#!/usr/bin/env bash
# The GPU checks of issue 14 (part 3) in one command, for a lent GPU machine with no internet:
#   1. our modeling code on the machine's own transformers (before any upgrade);
#   2. install the locked versions from carried wheels, then this repo (editable, no deps);
#   3. benchmarks/bench_gpu_finetune.py: our training step vs transformers' GPT-2, same GPU;
#   4. scripts/finetune.py through `accelerate launch`, random init, --trainable all:
#      bf16, fp16, the FSDP config with 1 process (gpt2-medium), bf16 gpt2-large; after each,
#      its output folder is loaded with transformers alone on the CPU and on the GPU (fp32)
#      and the logits compared (in the background, on other cores, while the next run trains).
#
#   bash benchmarks/gpu_check.sh                    # writes logs and JSON to $OUT
#
# Carried folder ($CARRY, default .gpu_carry, git-ignored through .git/info/exclude):
#   wheels/  locked wheels the image lacks (pip download --only-binary :all: --python-version
#            3.12 --platform manylinux2014_x86_64 ... datasets evaluate transformers ...)
#   data/    gpt2_bpe/ and sms_spam_collection/SMSSpamCollection (SCRATCHGPT_SHARED_DATA)
# Also auto-large and auto-xl (not in the default RUNS): gpt2-large / gpt2-xl --trainable all
# under the default --mixed-precision auto (bf16 on a GPU with bf16), one epoch's worth of
# steps each (STEPS), for the time per epoch against transformers' Trainer (bench_finetune).
# RUNS picks the fine-tuning runs (default: the first four) and SKIP_BENCH=1 skips step 3, e.g. for a
# rerun of what failed: RUNS="fsdp-medium bf16-large" SKIP_BENCH=1 bash benchmarks/gpu_check.sh
# Knobs for a dry run on a CPU machine: SKIP_INSTALL=1 COMPAT_DEVICE=cpu MEDIUM=<folder>
# LARGE=<folder> STEPS=2 BENCH_ARGS="--device cpu --preset tiny --steps 2".
set -u
OUT=${OUT:-/tmp/gpu_check_out}
CARRY=${CARRY:-.gpu_carry}
PY=${PY:-python3}
MEDIUM=${MEDIUM:-gpt2-medium}
LARGE=${LARGE:-gpt2-large}
XL=${XL:-gpt2-xl}
STEPS=${STEPS:-300}
RUN_FLAGS=${RUN_FLAGS:-}
BENCH_ARGS=${BENCH_ARGS:---preset gpt2-medium gpt2-large --shapes 8x32 16x128 32x256 --parity-preset gpt2-small}
LARGE_DEADLINE=${LARGE_DEADLINE:-340}  # seconds into the script after which gpt2-large is skipped
WORK=${WORK:-/tmp/gpu_check_runs}
RUNS=${RUNS:-bf16-medium fp16-medium fsdp-medium bf16-large}

mkdir -p "$OUT" "$WORK"
exec > >(tee -a "$OUT/gpu_check.log") 2>&1
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
export TOKENIZERS_PARALLELISM=false HF_HUB_DISABLE_TELEMETRY=1
export SCRATCHGPT_SHARED_DATA="$PWD/$CARRY/data" SCRATCHGPT_CACHE="$WORK/cache"
DATA="$SCRATCHGPT_SHARED_DATA/sms_spam_collection/SMSSpamCollection"
START=$SECONDS
step() { echo; echo "=== [$((SECONDS - START))s] $*"; }
NCPU=$(nproc)
if command -v taskset >/dev/null && [ "$NCPU" -ge 8 ]; then
    TRAIN_CPUS="taskset -c 0-$((NCPU - 5))"
    CHECK_CPUS="taskset -c $((NCPU - 4))-$((NCPU - 1))"
else
    TRAIN_CPUS="" CHECK_CPUS=""
fi

step "machine"
date -u
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || echo "no nvidia-smi"
cat "$CARRY/REVISION" 2>/dev/null
$PY - <<'EOF'
import importlib.metadata as md, platform, torch
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda,
      "gpu", torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
for name in ("transformers", "accelerate", "huggingface-hub", "tokenizers", "safetensors",
             "datasets", "evaluate", "numpy", "pandas", "pyarrow", "peft", "tiktoken"):
    try:
        print(f"  {name} {md.version(name)}")
    except md.PackageNotFoundError:
        print(f"  {name} MISSING")
EOF

step "1. modeling code on the image's own transformers (no install yet)"
timeout 120 $PY -m benchmarks.bench_gpu_finetune --compat-check --device "${COMPAT_DEVICE:-cuda}" \
    --json "$OUT/compat_preinstalled.json" || echo "COMPAT CHECK FAILED (rc $?)"

if [ -z "${SKIP_INSTALL:-}" ]; then
    step "2. install carried wheels (locked versions) + this repo"
    PINS="transformers==5.24.0 huggingface-hub==2.4.0 datasets==5.2.0 evaluate==0.4.6 crc32c==2.9.post0"
    if ! $PY -m pip install -q --no-index --find-links "$CARRY/wheels" $PINS; then
        echo "resolved install failed: installing every carried wheel with --no-deps"
        $PY -m pip install -q --no-index --no-deps "$CARRY"/wheels/*.whl
    fi
    if ! $PY -m pip install -q --no-deps --no-build-isolation -e .; then
        echo "EDITABLE INSTALL FAILED: using PYTHONPATH (src/ + modeling/ as scratchgpt_modeling)"
        mkdir -p "$WORK/pythonpath" && ln -sfn "$PWD/modeling" "$WORK/pythonpath/scratchgpt_modeling"
        export PYTHONPATH="$PWD/src:$WORK/pythonpath:$PWD"
    fi
    $PY -m pip check 2>&1 | head -20
    $PY -c "import transformers, datasets, evaluate, scratchgpt; print('now transformers', transformers.__version__, 'datasets', datasets.__version__)"
fi

if [ -z "${SKIP_BENCH:-}" ]; then
    step "3. benchmark: our training step vs transformers GPT2ForSequenceClassification"
    timeout 180 $PY -m benchmarks.bench_gpu_finetune $BENCH_ARGS --json "$OUT/bench.json" \
        || echo "BENCHMARK FAILED (rc $?)"
fi

# finetune NAME MODEL [launch flags...] -- [finetune flags...]
finetune() {
    local name=$1 model=$2 launch=() flags=()
    shift 2
    case " $RUNS " in *" $name "*) ;; *) return 0 ;; esac
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do launch+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    flags=("$@")
    local dir="$WORK/$name"
    step "4. finetune $name"
    local cmd=($PY -m accelerate.commands.launch "${launch[@]}" scripts/finetune.py
        --model "$model" --init random --trainable all --data-file "$DATA" --batch-size 8
        --max-steps "$STEPS" --output-dir "$dir" --overwrite $RUN_FLAGS "${flags[@]}")
    echo "+ ${cmd[*]}"
    local t0=$SECONDS sampler=""
    if command -v nvidia-smi >/dev/null; then  # per-process GPU memory, every 250 ms
        nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits -lms 250 \
            > "$WORK/mem_$name.csv" 2>/dev/null &
        sampler=$!
    fi
    local rc=0
    timeout 170 $TRAIN_CPUS "${cmd[@]}" || rc=$?
    [ -n "$sampler" ] && kill "$sampler" 2>/dev/null
    if [ -s "$WORK/mem_$name.csv" ]; then
        echo "nvidia-smi peak per-process memory.used: $(cut -d, -f2 "$WORK/mem_$name.csv" | sort -n | tail -1) MiB"
    fi
    if [ $rc -eq 0 ]; then
        echo "finetune $name OK in $((SECONDS - t0))s"
        OMP_NUM_THREADS=4 $CHECK_CPUS $PY -m benchmarks.bench_gpu_finetune --check-output "$dir" \
            --json "$OUT/check_$name.json" > "$WORK/check_$name.log" 2>&1 &
        CHECKS+=($!)
    else
        echo "FINETUNE $name FAILED (rc $rc) after $((SECONDS - t0))s"
    fi
}

CHECKS=()
finetune bf16-medium "$MEDIUM" --num_processes 1 --num_machines 1 --mixed_precision bf16 \
    --dynamo_backend no -- --mixed-precision bf16
finetune fp16-medium "$MEDIUM" --num_processes 1 --num_machines 1 --mixed_precision fp16 \
    --dynamo_backend no -- --mixed-precision fp16
finetune fsdp-medium "$MEDIUM" --config_file configs/fsdp_gpt2.yaml --num_processes 1 \
    -- --mixed-precision bf16
if [ $((SECONDS - START)) -lt "$LARGE_DEADLINE" ]; then
    finetune bf16-large "$LARGE" --num_processes 1 --num_machines 1 --mixed_precision bf16 \
        --dynamo_backend no -- --mixed-precision bf16
else
    step "gpt2-large skipped: $((SECONDS - START))s used (deadline ${LARGE_DEADLINE}s)"
fi
finetune auto-large "$LARGE" --num_processes 1 --num_machines 1 --dynamo_backend no \
    -- --mixed-precision auto
finetune auto-xl "$XL" --num_processes 1 --num_machines 1 --dynamo_backend no \
    -- --mixed-precision auto

step "5. output folders: load on CPU + GPU (waiting for the background checks)"
[ ${#CHECKS[@]} -gt 0 ] && wait "${CHECKS[@]}"  # not a bare wait: that would wait for tee too
for f in "$WORK"/check_*.log; do [ -e "$f" ] && { echo "--- $f"; tail -5 "$f"; }; done
$PY - "$OUT" "$WORK" <<'EOF'
import json, sys
from pathlib import Path
out, work = Path(sys.argv[1]), Path(sys.argv[2])
summary = {}
for name in ("bf16-medium", "fp16-medium", "fsdp-medium", "bf16-large", "auto-large", "auto-xl"):
    folder = work / name
    args = folder / "training_args.json"
    if not args.is_file():
        summary[name] = {"ran": False}
        continue
    record, metrics = json.loads(args.read_text()), json.loads((folder / "metrics.json").read_text())
    row = {
        "ran": True,
        "distributed_type": record.get("distributed_type"),
        "mixed_precision": record.get("mixed_precision"),
        "num_processes": record.get("num_processes"),
        "prefix_cache": record.get("prefix_cache"),
        "parameters": record.get("parameters"),
        "steps": record["global_steps"],
        "examples": record["examples_seen"],
        "train_seconds": record["train_seconds"],
        "steps_per_s": record["global_steps"] / record["train_seconds"],
        "examples_per_s": record["examples_seen"] / record["train_seconds"],
        "phase_seconds": record.get("seconds"),
        "accuracy": {split: m["accuracy"] for split, m in metrics.items()},
        "loss": {split: m.get("loss") for split, m in metrics.items()},
        "folder_files": sorted(p.name for p in folder.iterdir()),
        "folder_mib": sum(p.stat().st_size for p in folder.iterdir()) / 2**20,
    }
    mem = work / f"mem_{name}.csv"
    used = []
    for line in mem.read_text().splitlines() if mem.is_file() else []:
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[1].isdigit():
            used.append(int(parts[1]))
    row["nvidia_smi_peak_process_mib"] = max(used) if used else None
    check = out / f"check_{name}.json"
    if check.is_file():
        found = json.loads(check.read_text()).popitem()[1]
        row |= {k: found.get(k) for k in ("loads_on_cpu", "cpu_param_dtype", "logits_match",
                                          "cpu_vs_gpu_max_abs_diff", "cpu_pipeline", "config")}
        check.unlink()  # folded in here: at most 8 files come back from $OUT
    summary[name] = row
    print(f"{name:12} {row['distributed_type']:>4} {row['mixed_precision']:>4} "
          f"{row['steps']} steps {row['steps_per_s']:6.2f} steps/s {row['examples_per_s']:7.1f} ex/s  "
          f"acc val {row['accuracy']['validation']:.4f} test {row['accuracy']['test']:.4f}  "
          f"cpu load {row.get('loads_on_cpu')} logits match {row.get('logits_match')} "
          f"(max diff {row.get('cpu_vs_gpu_max_abs_diff')})")
(out / "finetune_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
EOF
step "done"
ls -la "$OUT"
