#!/usr/bin/env bash
# One call on a GPU machine: check the device and the token pack, then train the profile's cells of
# findings 3.1 and 3.2 in priority order until the budget is spent, each result written to $OUT as
# it lands (lib.gpu_window). Import what comes back here with `python -m lib.gpu_window import DIR`.
#
#   tools/gpu_sweep.sh                                   # defaults: PROFILE=gpu BUDGET_S=420 LANES=3
#   PROFILE=smoke BUDGET_S=40 LANES=1 SEEDS=0 tools/gpu_sweep.sh      # the same path on a CPU (CI)
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=${PROFILE:-gpu}
BUDGET_S=${BUDGET_S:-420}
LANES=${LANES:-3}
SEEDS=${SEEDS:-0 1}
OUT=${OUT:-_build/gpu_sweep}
export REPEAT_PACK=${REPEAT_PACK:-data_cache/pack/$PROFILE}
mkdir -p "$OUT"

# shellcheck source=tools/python_env.sh
source tools/python_env.sh
"$PYTHON" - <<'PY'
import torch
print("device:", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU (no CUDA device)")
PY
"$PYTHON" -m lib.pack check --profile "$PROFILE" --out "$REPEAT_PACK"
# shellcheck disable=SC2086  # SEEDS is a list
"$PYTHON" -m lib.gpu_window sweep --profile "$PROFILE" --budget "$BUDGET_S" --lanes "$LANES" --seeds $SEEDS --out "$OUT"
