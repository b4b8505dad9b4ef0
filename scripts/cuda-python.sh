#!/usr/bin/env bash
# Installs cuda-python's driver bindings (PyPI cuda-bindings 12.9) for the
# system Python (/usr/bin/python3), for samples/cuda/cuda_python_client.py.
# Idempotent. The bindings load libcuda.so.1 at run time; the CUDA stand-in's
# tests point them at the stand-in through LD_LIBRARY_PATH.
set -euo pipefail
py=/usr/bin/python3
if "$py" -c 'import cuda.bindings.driver' 2>/dev/null; then
  exit 0
fi
if ! "$py" -m pip --version >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-pip
fi
# Debian marks its Python as externally managed; a --user install beside it
# touches no Debian package.
"$py" -m pip install -q --user --break-system-packages 'cuda-bindings==12.9.*' \
  || "$py" -m pip install -q --user 'cuda-bindings==12.9.*'
"$py" -c 'import cuda.bindings.driver'
