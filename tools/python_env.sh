# Sourced by tools/gpu_check.sh and tools/gpu_sweep.sh: the Python to use, and the wheels carried in
# .whl/ (packages a machine without network lacks, e.g. transformers at our pinned version), installed
# once into /tmp/repeat-site and put first on PYTHONPATH.
PYTHON=${PYTHON:-python3}
if compgen -G ".whl/*.whl" >/dev/null && [ ! -d /tmp/repeat-site ]; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/repeat-site .whl/*.whl
fi
if [ -d /tmp/repeat-site ]; then
  export PYTHONPATH=/tmp/repeat-site${PYTHONPATH:+:$PYTHONPATH}
fi
