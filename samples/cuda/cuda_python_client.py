#!/usr/bin/env python3
"""An unmodified CUDA client on cuda-python (`cuda.bindings.driver`, which
resolves every driver function through cuGetProcAddress_v2): context,
streams, copies both ways, vector_add and saxpy from kernels.ptx, events,
synchronisation. Prints deterministic results only (sums and checksums).

Usage: cuda_python_client.py [KERNELS.ptx]
"""
import ctypes
import os
import struct
import sys

from cuda.bindings import driver as cuda

N = 2048


def check(result):
    err, *rest = result if isinstance(result, tuple) else (result,)
    if err != cuda.CUresult.CUDA_SUCCESS:
        _, name = cuda.cuGetErrorName(err)
        raise SystemExit(f"CUDA error: {name.decode()}")
    if not rest:
        return None
    return rest[0] if len(rest) == 1 else rest


def floats(buf):
    return list(buf)


def report(name, values):
    data = struct.pack(f"{len(values)}f", *values)
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    print(f"{name}: n={len(values)} sum={sum(values):.3f} first={values[0]} "
          f"last={values[-1]} checksum={h:016x}")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ptx_path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "kernels.ptx")

    check(cuda.cuInit(0))
    print("driver version:", check(cuda.cuDriverGetVersion()))
    dev = check(cuda.cuDeviceGet(0))
    print("device:", check(cuda.cuDeviceGetName(64, dev)).split(b"\0")[0].decode())
    major = check(cuda.cuDeviceGetAttribute(
        cuda.CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev))
    minor = check(cuda.cuDeviceGetAttribute(
        cuda.CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev))
    print(f"compute capability: {major}.{minor}")
    ctx = check(cuda.cuDevicePrimaryCtxRetain(dev))
    check(cuda.cuCtxSetCurrent(ctx))

    with open(ptx_path, "rb") as f:
        ptx = f.read() + b"\0"
    module = check(cuda.cuModuleLoadData(ptx))
    vector_add = check(cuda.cuModuleGetFunction(module, b"vector_add"))
    saxpy = check(cuda.cuModuleGetFunction(module, b"saxpy"))
    offsets = [check(cuda.cuFuncGetParamInfo(saxpy, i)) for i in range(4)]
    print("saxpy params (offset, size):", [tuple(int(x) for x in o) for o in offsets])

    a = [i * 0.5 for i in range(N)]
    b = [(N - i) * 0.25 for i in range(N)]
    host_a = (ctypes.c_float * N)(*a)
    host_b = (ctypes.c_float * N)(*b)
    size = N * 4

    s1 = check(cuda.cuStreamCreate(0))
    s2 = check(cuda.cuStreamCreateWithPriority(0, -1))
    start = check(cuda.cuEventCreate(0))
    end = check(cuda.cuEventCreate(0))
    d_a = check(cuda.cuMemAlloc(size))
    d_b = check(cuda.cuMemAlloc(size))
    d_c = check(cuda.cuMemAlloc(size))
    d_y = check(cuda.cuMemAlloc(size))

    check(cuda.cuEventRecord(start, s1))
    check(cuda.cuMemcpyHtoDAsync(d_a, host_a, size, s1))
    check(cuda.cuMemcpyHtoDAsync(d_b, host_b, size, s1))
    n = ctypes.c_uint(N)
    args = [ctypes.c_uint64(int(d_a)), ctypes.c_uint64(int(d_b)), ctypes.c_uint64(int(d_c)), n]
    params = (ctypes.c_void_p * 4)(*[ctypes.addressof(x) for x in args])
    block = 256
    check(cuda.cuLaunchKernel(vector_add, N // block, 1, 1, block, 1, 1, 0, s1,
                              ctypes.addressof(params), 0))
    check(cuda.cuEventRecord(end, s1))
    check(cuda.cuStreamWaitEvent(s2, end, 0))

    # saxpy on the second stream: y = 2 * a + c
    check(cuda.cuMemcpyDtoDAsync(d_y, d_c, size, s2))
    alpha = ctypes.c_float(2.0)
    args2 = [alpha, ctypes.c_uint64(int(d_a)), ctypes.c_uint64(int(d_y)), n]
    params2 = (ctypes.c_void_p * 4)(*[ctypes.addressof(x) for x in args2])
    check(cuda.cuLaunchKernel(saxpy, N // block, 1, 1, block, 1, 1, 0, s2,
                              ctypes.addressof(params2), 0))
    check(cuda.cuStreamSynchronize(s1))
    check(cuda.cuStreamSynchronize(s2))
    ms = check(cuda.cuEventElapsedTime(start, end))
    print("events: elapsed time measured:", ms >= 0.0)

    out = (ctypes.c_float * N)()
    check(cuda.cuMemcpyDtoH(out, d_c, size))
    report("vector_add", floats(out))
    check(cuda.cuMemsetD32(d_b, 0, N))
    check(cuda.cuMemcpyDtoHAsync(out, d_y, size, s2))
    check(cuda.cuStreamSynchronize(s2))
    report("saxpy", floats(out))
    check(cuda.cuMemcpyDtoH(out, d_b, size))
    report("memset", floats(out))

    free, total = check(cuda.cuMemGetInfo())
    print("memory: total >= free:", total >= free)
    for p in (d_a, d_b, d_c, d_y):
        check(cuda.cuMemFree(p))
    check(cuda.cuEventDestroy(start))
    check(cuda.cuEventDestroy(end))
    check(cuda.cuStreamDestroy(s1))
    check(cuda.cuStreamDestroy(s2))
    check(cuda.cuModuleUnload(module))
    check(cuda.cuCtxSynchronize())
    check(cuda.cuDevicePrimaryCtxRelease(dev))
    print("ok")


if __name__ == "__main__":
    main()
