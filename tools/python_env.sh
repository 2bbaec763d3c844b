# Sourced by tools/gpu_check.sh and tools/gpu_sweep.sh: the Python to use, and the wheels carried in
# .whl/ (packages a machine without network lacks, e.g. transformers at our pinned version), installed
# into /tmp/repeat-site (again whenever .whl/ holds other wheels) and put first on PYTHONPATH.
PYTHON=${PYTHON:-python3}
if compgen -G ".whl/*.whl" >/dev/null && [ "$(ls .whl)" != "$(cat /tmp/repeat-site/.wheels 2>/dev/null)" ]; then
  rm -rf /tmp/repeat-site
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/repeat-site .whl/*.whl
  ls .whl > /tmp/repeat-site/.wheels
fi
if [ -d /tmp/repeat-site ]; then
  export PYTHONPATH=/tmp/repeat-site${PYTHONPATH:+:$PYTHONPATH}
fi
