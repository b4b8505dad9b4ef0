# Shared set-up, sourced by the other scripts: installs missing Debian
# packages and checks the Rust toolchain. Idempotent.

# Debian packages the project needs: PoCL (the default OpenCL device), the
# ICD loader and headers, clinfo, QEMU + busybox + cpio for the VM tests, and
# the unmodified Debian programs the worker's tests run (PyOpenCL, clpeak).
AVA_PACKAGES=(pocl-opencl-icd ocl-icd-libopencl1 ocl-icd-opencl-dev opencl-headers clinfo
              gcc qemu-system-x86 busybox-static cpio python3-pyopencl python3-numpy clpeak prometheus piglit)

ensure_packages() {
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "==> apt-get install ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

command -v cargo >/dev/null || { echo "cargo not found: install Rust (https://rustup.rs)" >&2; exit 1; }
rustup component add rustfmt clippy >/dev/null 2>&1 || true
