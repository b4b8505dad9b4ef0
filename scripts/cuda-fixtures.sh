#!/usr/bin/env bash
# Compiles samples/cuda/kernels.cu to samples/cuda/kernels.ptx with NVRTC
# (PyPI wheel nvidia-cuda-nvrtc-cu12, called through ctypes): no GPU, driver
# or CUDA toolkit needed. The PTX is committed; rerun after editing the .cu.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/cuda-fixtures-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import nvidia.cuda_nvrtc' 2>/dev/null; then
  "$venv/bin/python" -m pip install -q 'nvidia-cuda-nvrtc-cu12==12.8.*'
fi
"$venv/bin/python" - samples/cuda/kernels.cu samples/cuda/kernels.ptx <<'PY'
import ctypes, glob, os, sys
import nvidia.cuda_nvrtc as pkg

src_path, out_path = sys.argv[1], sys.argv[2]
lib_dir = os.path.join(list(pkg.__path__)[0], "lib")
libs = sorted(glob.glob(os.path.join(lib_dir, "libnvrtc.so*")))
libs = [l for l in libs if "builtins" not in l]
nvrtc = ctypes.CDLL(libs[0])

def check(res, what):
    if res != 0:
        nvrtc.nvrtcGetErrorString.restype = ctypes.c_char_p
        raise SystemExit(f"{what}: {nvrtc.nvrtcGetErrorString(res).decode()}")

src = open(src_path, "rb").read()
prog = ctypes.c_void_p()
check(nvrtc.nvrtcCreateProgram(ctypes.byref(prog), src, b"kernels.cu", 0, None, None), "nvrtcCreateProgram")
opts = [b"--gpu-architecture=compute_80", b"-default-device"]
arr = (ctypes.c_char_p * len(opts))(*opts)
res = nvrtc.nvrtcCompileProgram(prog, len(opts), arr)
size = ctypes.c_size_t()
nvrtc.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
log = ctypes.create_string_buffer(size.value)
nvrtc.nvrtcGetProgramLog(prog, log)
if log.value.strip():
    sys.stderr.write(log.value.decode() + "\n")
check(res, "nvrtcCompileProgram")
nvrtc.nvrtcGetPTXSize(prog, ctypes.byref(size))
ptx = ctypes.create_string_buffer(size.value)
check(nvrtc.nvrtcGetPTX(prog, ptx), "nvrtcGetPTX")
with open(out_path, "w") as f:
    f.write(ptx.value.decode())
print(f"wrote {out_path}")
PY
