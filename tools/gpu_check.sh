#!/usr/bin/env bash
# Does this machine run the project on its accelerator? One gpu-profile config at a reduced budget,
# trained through `python -m lib.train` and through `accelerate launch`, from a token pack
# (python -m lib.pack build --profile gpu, built where the corpora are, sent along with the call).
# Writes $OUT/gpu_check.json: tokens/s, achieved FLOP/s and its fraction of the bf16 matmul peak
# (measured in the training process), and the final metrics of both runs.
#
#   tools/gpu_check.sh                       # on a GPU machine (defaults: PROFILE=gpu, SIZE=XS, TOKENS=2^21)
#   PROFILE=smoke SIZE=XS TOKENS=4096 tools/gpu_check.sh    # the same code path on a CPU (CI)
#
# Python packages: wheels in .whl/ are installed first (a machine without network; e.g.
# transformers at our pinned version), then the requirements are checked by importing them.
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=${PROFILE:-gpu}
SIZE=${SIZE:-XS}
TOKENS=${TOKENS:-2097152}
OUT=${OUT:-_build/gpu_check}
export REPEAT_PACK=${REPEAT_PACK:-data_cache/pack/$PROFILE}
mkdir -p "$OUT"
start=$(date +%s)

# shellcheck source=tools/python_env.sh
source tools/python_env.sh
"$PYTHON" -c "import torch, transformers, accelerate, sentencepiece, safetensors, numpy, pandas, filelock, tqdm"
"$PYTHON" -m lib.pack check --profile "$PROFILE" --out "$REPEAT_PACK"

work=$(mktemp -d)
"$PYTHON" - "$PROFILE" "$SIZE" "$TOKENS" "$work/cfg.json" <<'PY'
import json, sys
from lib.profiles import get_profile
profile, size, tokens, path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
cfg = get_profile(profile).config(size, unique_tokens=tokens, label=f"gpu check {size}")
open(path, "w").write(json.dumps(cfg.to_dict()))
PY

# The same config twice, each into its own cache: plainly, then through accelerate launch.
REPEAT_CACHE_DIR=$work/plain "$PYTHON" -m lib.train --config "$work/cfg.json"
if "$PYTHON" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
  launch=(--config_file configs/accelerate_multi_gpu.yaml --num_processes "$("$PYTHON" -c 'import torch; print(torch.cuda.device_count())')")
else
  launch=(--cpu --num_processes 1)
fi
REPEAT_CACHE_DIR=$work/accelerate "$PYTHON" -m accelerate.commands.launch "${launch[@]}" -m lib.train --config "$work/cfg.json"

"$PYTHON" -m lib.gpu_window report "$work/plain" "$work/accelerate" --out "$OUT/gpu_check.json" --seconds $(( $(date +%s) - start ))
rm -rf "$work"
