#!/usr/bin/env python3
"""An unmodified cuda-python program on the driver API's less common
features: unified copies (cuMemcpy, cuMemcpyAsync), 2D and 3D copies
between pageable host memory and pitched device memory, with offsets, in
every direction and on a stream, cuLaunchKernelEx with launch
attributes, memory pools, libraries, and the entry points cuGetProcAddress
gives (with CUDA_PYTHON_CUDA_PER_THREAD_DEFAULT_STREAM=1 set, cuda-python
resolves every function to its per-thread default stream form). Prints
deterministic results only.

Usage: cuda_python_features.py [KERNELS.ptx]
"""
import ctypes
import os
import sys

from cuda.bindings import driver as cuda

HOST = cuda.CUmemorytype.CU_MEMORYTYPE_HOST
DEVICE = cuda.CUmemorytype.CU_MEMORYTYPE_DEVICE
UNIFIED = cuda.CUmemorytype.CU_MEMORYTYPE_UNIFIED


def check(result):
    err, *rest = result if isinstance(result, tuple) else (result,)
    if err != cuda.CUresult.CUDA_SUCCESS:
        _, name = cuda.cuGetErrorName(err)
        raise SystemExit(f"CUDA error: {name.decode()}")
    if not rest:
        return None
    return rest[0] if len(rest) == 1 else rest


def error(result):
    """The name of a call's error (CUDA_SUCCESS included)."""
    err = result[0] if isinstance(result, tuple) else result
    return cuda.cuGetErrorName(err)[1].decode()


def digest(buf):
    h = 0xCBF29CE484222325
    for byte in bytes(buf):
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def entry_point_names():
    """The exported names of the functions cuGetProcAddress gives."""
    libc = ctypes.CDLL(None)

    class DlInfo(ctypes.Structure):
        _fields_ = [("fname", ctypes.c_char_p), ("fbase", ctypes.c_void_p),
                    ("sname", ctypes.c_char_p), ("saddr", ctypes.c_void_p)]

    flags = (cuda.CUdriverProcAddress_flags.CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM
             if os.environ.get("CUDA_PYTHON_CUDA_PER_THREAD_DEFAULT_STREAM") == "1"
             else cuda.CUdriverProcAddress_flags.CU_GET_PROC_ADDRESS_DEFAULT)
    for name, version in [("cuLaunchKernel", 12000), ("cuMemcpyHtoD", 12000),
                          ("cuStreamSynchronize", 12000), ("cuMemAlloc", 12000),
                          ("cuMemcpy3DAsync", 12000), ("cuNoSuchFunction", 12000)]:
        pfn, status = check(cuda.cuGetProcAddress(name.encode(), version, flags))
        info = DlInfo()
        found = "NULL"
        if int(pfn) and libc.dladdr(ctypes.c_void_p(int(pfn)), ctypes.byref(info)):
            found = info.sname.decode()
        print(f"entry point {name}@{version}: {found} ({status.name})")


def copy2d(src, dst, width, height, stream=None):
    """A 2D copy; each side is (memory type, address, x, y, pitch)."""
    c = cuda.CUDA_MEMCPY2D()
    (c.srcMemoryType, addr, c.srcXInBytes, c.srcY, c.srcPitch) = src
    if src[0] == HOST:
        c.srcHost = addr
    else:
        c.srcDevice = addr
    (c.dstMemoryType, addr, c.dstXInBytes, c.dstY, c.dstPitch) = dst
    if dst[0] == HOST:
        c.dstHost = addr
    else:
        c.dstDevice = addr
    c.WidthInBytes = width
    c.Height = height
    if stream is None:
        return cuda.cuMemcpy2D(c)
    return cuda.cuMemcpy2DAsync(c, stream)


def copy3d(src, dst, extent, stream=None):
    """A 3D copy; each side is (memory type, address, (x, y, z), pitch,
    rows per slice)."""
    c = cuda.CUDA_MEMCPY3D()
    (c.srcMemoryType, addr, (c.srcXInBytes, c.srcY, c.srcZ), c.srcPitch, c.srcHeight) = src
    if src[0] == HOST:
        c.srcHost = addr
    else:
        c.srcDevice = addr
    (c.dstMemoryType, addr, (c.dstXInBytes, c.dstY, c.dstZ), c.dstPitch, c.dstHeight) = dst
    if dst[0] == HOST:
        c.dstHost = addr
    else:
        c.dstDevice = addr
    (c.WidthInBytes, c.Height, c.Depth) = extent
    if stream is None:
        return cuda.cuMemcpy3D(c)
    return cuda.cuMemcpy3DAsync(c, stream)


def main():
    check(cuda.cuInit(0))
    entry_point_names()
    dev = check(cuda.cuDeviceGet(0))
    ctx = check(cuda.cuDevicePrimaryCtxRetain(dev))
    check(cuda.cuCtxSetCurrent(ctx))
    stream = check(cuda.cuStreamCreate(0))

    # Unified copies: host -> device -> device -> host, sync and async.
    n = 4096
    src = (ctypes.c_ubyte * n)(*[(i * 7 + 3) % 251 for i in range(n)])
    back = (ctypes.c_ubyte * n)()
    d1 = check(cuda.cuMemAlloc(n))
    d2 = check(cuda.cuMemAlloc(n))
    check(cuda.cuMemcpy(d1, ctypes.addressof(src), n))
    check(cuda.cuMemcpyAsync(d2, d1, n, stream))
    check(cuda.cuMemcpyAsync(ctypes.addressof(back), d2, n, stream))
    check(cuda.cuStreamSynchronize(stream))
    print("unified copies: equal =", bytes(back) == bytes(src), "digest", digest(back))
    host2 = (ctypes.c_ubyte * n)()
    check(cuda.cuMemcpy(ctypes.addressof(host2), ctypes.addressof(src), n))
    print("unified host to host: equal =", bytes(host2) == bytes(src))

    # 2D: a 20 x 12 box of a 40-byte-pitch host image into a pitched
    # allocation at (8, 3), back out at (4, 2) of another host image.
    width, height = 20, 12
    img = (ctypes.c_ubyte * (40 * 16))(*[(i * 13) % 256 for i in range(40 * 16)])
    dp, pitch = check(cuda.cuMemAllocPitch(64, 16, 4))
    print("pitched allocation: pitch >= width =", pitch >= 64)
    check(cuda.cuMemsetD8(dp, 0xAB, pitch * 16))
    check(copy2d((HOST, ctypes.addressof(img), 0, 0, 40), (DEVICE, int(dp), 8, 3, pitch), width, height))
    out = (ctypes.c_ubyte * (32 * 16))()
    check(copy2d((DEVICE, int(dp), 8, 3, pitch), (HOST, ctypes.addressof(out), 4, 2, 32), width, height))
    expect = all(out[(2 + y) * 32 + 4 + x] == img[y * 40 + x] for y in range(height) for x in range(width))
    print("2D host -> pitched device -> host: box equal =", expect, "digest", digest(out))
    # Device to device (unified on one side), then on a stream.
    d3 = check(cuda.cuMemAlloc(64 * 16))
    check(copy2d((UNIFIED, int(dp), 0, 0, pitch), (DEVICE, int(d3), 0, 0, 64), 64, 16, stream))
    whole = (ctypes.c_ubyte * (64 * 16))()
    check(copy2d((DEVICE, int(d3), 0, 0, 64), (UNIFIED, ctypes.addressof(whole), 0, 0, 64), 64, 16, stream))
    check(cuda.cuStreamSynchronize(stream))
    print("2D device -> device on a stream: digest", digest(whole))
    print("2D pitch below the width:",
          error(copy2d((HOST, ctypes.addressof(img), 0, 0, 8), (DEVICE, int(dp), 0, 0, pitch), 16, 2)))
    print("2D out of the allocation:",
          error(copy2d((HOST, ctypes.addressof(img), 0, 0, 40), (DEVICE, int(d3), 0, 60, 64), 20, 8)))

    # 3D: a 6 x 5 x 4 box of a 10 x 8 x 6 host volume at (2, 1, 1) into an
    # 8-byte pitch, 6-row device volume at (1, 0, 2), and back.
    vol = (ctypes.c_ubyte * (10 * 8 * 6))(*[(i * 31 + 5) % 256 for i in range(10 * 8 * 6)])
    dv = check(cuda.cuMemAlloc(8 * 6 * 8))
    check(cuda.cuMemsetD8(dv, 0, 8 * 6 * 8))
    box = (6, 5, 4)
    check(copy3d((HOST, ctypes.addressof(vol), (2, 1, 1), 10, 8), (DEVICE, int(dv), (1, 0, 2), 8, 6), box))
    dev_vol = (ctypes.c_ubyte * (8 * 6 * 8))()
    check(cuda.cuMemcpyDtoH(dev_vol, dv, 8 * 6 * 8))
    ok = all(dev_vol[((2 + z) * 6 + y) * 8 + 1 + x] == vol[((1 + z) * 8 + 1 + y) * 10 + 2 + x]
             for z in range(4) for y in range(5) for x in range(6))
    print("3D host -> device: box equal =", ok, "digest", digest(dev_vol))
    vol2 = (ctypes.c_ubyte * (10 * 8 * 6))()
    check(copy3d((DEVICE, int(dv), (1, 0, 2), 8, 6), (HOST, ctypes.addressof(vol2), (2, 1, 1), 10, 8), box, stream))
    check(cuda.cuStreamSynchronize(stream))
    ok = all(vol2[((1 + z) * 8 + 1 + y) * 10 + 2 + x] == vol[((1 + z) * 8 + 1 + y) * 10 + 2 + x]
             for z in range(4) for y in range(5) for x in range(6))
    print("3D device -> host on a stream: box equal =", ok, "digest", digest(vol2))
    dv2 = check(cuda.cuMemAlloc(8 * 6 * 8))
    check(copy3d((DEVICE, int(dv), (0, 0, 0), 8, 6), (DEVICE, int(dv2), (0, 0, 0), 8, 6), (8, 6, 8), stream))
    check(cuda.cuMemcpyDtoHAsync(dev_vol, dv2, 8 * 6 * 8, stream))
    check(cuda.cuStreamSynchronize(stream))
    print("3D device -> device: digest", digest(dev_vol))
    print("3D rows per slice below the box:",
          error(copy3d((HOST, ctypes.addressof(vol), (0, 0, 0), 10, 2), (DEVICE, int(dv), (0, 0, 0), 8, 6), box)))
    print("3D from a CUDA array:",
          error(copy3d((cuda.CUmemorytype.CU_MEMORYTYPE_ARRAY, 0, (0, 0, 0), 8, 6),
                       (DEVICE, int(dv), (0, 0, 0), 8, 6), box)))

    # cuLaunchKernelEx: scale_inplace with launch attributes (a priority,
    # a launch completion event), then an unknown attribute.
    ptx_path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "kernels.ptx")
    with open(ptx_path, "rb") as f:
        module = check(cuda.cuModuleLoadData(f.read() + b"\0"))
    scale = check(cuda.cuModuleGetFunction(module, b"scale_inplace"))
    m = 1024
    xs = (ctypes.c_float * m)(*[float(i) for i in range(m)])
    dx = check(cuda.cuMemAlloc(m * 4))
    check(cuda.cuMemcpyHtoD(dx, xs, m * 4))
    done = check(cuda.cuEventCreate(0))
    args = [ctypes.c_uint64(int(dx)), ctypes.c_float(3.0), ctypes.c_uint(m)]
    params = (ctypes.c_void_p * 3)(*[ctypes.addressof(x) for x in args])
    cfg = cuda.CUlaunchConfig()
    cfg.gridDimX, cfg.gridDimY, cfg.gridDimZ = m // 128, 1, 1
    cfg.blockDimX, cfg.blockDimY, cfg.blockDimZ = 128, 1, 1
    cfg.sharedMemBytes = 0
    cfg.hStream = stream
    priority = cuda.CUlaunchAttribute()
    priority.id = cuda.CUlaunchAttributeID.CU_LAUNCH_ATTRIBUTE_PRIORITY
    priority.value.priority = 0
    completion = cuda.CUlaunchAttribute()
    completion.id = cuda.CUlaunchAttributeID.CU_LAUNCH_ATTRIBUTE_LAUNCH_COMPLETION_EVENT
    completion.value.launchCompletionEvent.event = done
    completion.value.launchCompletionEvent.flags = 0
    cfg.attrs = [priority, completion]
    cfg.numAttrs = 2
    check(cuda.cuLaunchKernelEx(cfg, scale, ctypes.addressof(params), 0))
    check(cuda.cuStreamSynchronize(stream))
    check(cuda.cuEventSynchronize(done))
    check(cuda.cuMemcpyDtoH(xs, dx, m * 4))
    print("cuLaunchKernelEx: x[i] == 3 i for all i =",
          all(xs[i] == 3.0 * i for i in range(m)), "sum", sum(xs))
    cfg.hStream = 0
    cfg.attrs = []
    cfg.numAttrs = 0
    check(cuda.cuLaunchKernelEx(cfg, scale, ctypes.addressof(params), 0))
    check(cuda.cuCtxSynchronize())
    check(cuda.cuMemcpyDtoH(xs, dx, m * 4))
    print("cuLaunchKernelEx on the default stream: sum", sum(xs))
    bad = cuda.CUlaunchAttribute()
    bad.id = 99
    cfg.attrs = [bad]
    cfg.numAttrs = 1
    print("cuLaunchKernelEx with an unknown attribute:",
          error(cuda.cuLaunchKernelEx(cfg, scale, ctypes.addressof(params), 0)))
    cfg.attrs = []
    cfg.numAttrs = 0
    cfg.blockDimX = 2048
    print("cuLaunchKernelEx with too many threads:",
          error(cuda.cuLaunchKernelEx(cfg, scale, ctypes.addressof(params), 0)))
    check(cuda.cuEventDestroy(done))
    check(cuda.cuMemFree(dx))
    check(cuda.cuModuleUnload(module))

    # Memory pools: the default pool, a pool of one's own as the current
    # pool, its attributes, allocations from it in stream order.
    A = cuda.CUmemPool_attribute
    default = check(cuda.cuDeviceGetDefaultMemPool(dev))
    print("pools: current is the default one =",
          int(check(cuda.cuDeviceGetMemPool(dev))) == int(default))
    props = cuda.CUmemPoolProps()
    props.allocType = cuda.CUmemAllocationType.CU_MEM_ALLOCATION_TYPE_PINNED
    props.location.type = cuda.CUmemLocationType.CU_MEM_LOCATION_TYPE_DEVICE
    props.location.id = 0
    pool = check(cuda.cuMemPoolCreate(props))
    threshold = cuda.cuuint64_t(1 << 20)
    check(cuda.cuMemPoolSetAttribute(pool, A.CU_MEMPOOL_ATTR_RELEASE_THRESHOLD, threshold))
    print("pool release threshold:",
          int(check(cuda.cuMemPoolGetAttribute(pool, A.CU_MEMPOOL_ATTR_RELEASE_THRESHOLD))))
    print("pool reuse follows event dependencies:",
          check(cuda.cuMemPoolGetAttribute(pool, A.CU_MEMPOOL_ATTR_REUSE_FOLLOW_EVENT_DEPENDENCIES)))
    pa = check(cuda.cuMemAllocFromPoolAsync(3000, pool, stream))
    check(cuda.cuMemsetD8Async(pa, 0x5A, 3000, stream))
    check(cuda.cuDeviceSetMemPool(dev, pool))
    print("pools: current is the new one =", int(check(cuda.cuDeviceGetMemPool(dev))) == int(pool))
    pb = check(cuda.cuMemAllocAsync(1000, stream))
    check(cuda.cuMemcpyDtoDAsync(pb, pa, 1000, stream))
    got = (ctypes.c_ubyte * 1000)()
    check(cuda.cuMemcpyDtoHAsync(got, pb, 1000, stream))
    check(cuda.cuStreamSynchronize(stream))
    print("pool allocations hold their bytes:", all(b == 0x5A for b in got))
    used = int(check(cuda.cuMemPoolGetAttribute(pool, A.CU_MEMPOOL_ATTR_USED_MEM_CURRENT)))
    print("pool used memory covers both allocations:", used >= 4000)
    check(cuda.cuMemFreeAsync(pa, stream))
    check(cuda.cuMemFreeAsync(pb, stream))
    check(cuda.cuStreamSynchronize(stream))
    print("pool used memory after the frees:",
          int(check(cuda.cuMemPoolGetAttribute(pool, A.CU_MEMPOOL_ATTR_USED_MEM_CURRENT))))
    high = int(check(cuda.cuMemPoolGetAttribute(pool, A.CU_MEMPOOL_ATTR_USED_MEM_HIGH)))
    print("pool high mark at least the use:", high >= used)
    check(cuda.cuMemPoolTrimTo(pool, 0))
    print("pool high mark set to other than 0:",
          error(cuda.cuMemPoolSetAttribute(pool, A.CU_MEMPOOL_ATTR_USED_MEM_HIGH, cuda.cuuint64_t(5))))
    check(cuda.cuMemPoolDestroy(pool))
    print("pools: current after destroying it is the default one =",
          int(check(cuda.cuDeviceGetMemPool(dev))) == int(default))
    print("destroying the default pool:", error(cuda.cuMemPoolDestroy(default)))
    print("allocating from a destroyed pool:", error(cuda.cuMemAllocFromPoolAsync(64, pool, stream)))

    # Libraries: loaded once for every context; a kernel launched as it is
    # and through its function, from data and from a file.
    with open(ptx_path, "rb") as f:
        image = f.read() + b"\0"
    lib = check(cuda.cuLibraryLoadData(image, [], [], 0, [], [], 0))
    kernel = check(cuda.cuLibraryGetKernel(lib, b"scale_inplace"))
    func = check(cuda.cuKernelGetFunction(kernel))
    print("library kernel parameters (offset, size):",
          [tuple(int(v) for v in check(cuda.cuKernelGetParamInfo(kernel, i))) for i in range(3)])
    print("library module loaded:", int(check(cuda.cuLibraryGetModule(lib))) != 0)
    ys = (ctypes.c_float * m)(*[1.0] * m)
    dy = check(cuda.cuMemAlloc(m * 4))
    check(cuda.cuMemcpyHtoD(dy, ys, m * 4))
    args = [ctypes.c_uint64(int(dy)), ctypes.c_float(2.0), ctypes.c_uint(m)]
    params = (ctypes.c_void_p * 3)(*[ctypes.addressof(x) for x in args])
    check(cuda.cuLaunchKernel(func, m // 128, 1, 1, 128, 1, 1, 0, stream,
                              ctypes.addressof(params), 0))
    check(cuda.cuLaunchKernel(cuda.CUfunction(int(kernel)), m // 128, 1, 1, 128, 1, 1, 0,
                              stream, ctypes.addressof(params), 0))
    check(cuda.cuStreamSynchronize(stream))
    check(cuda.cuMemcpyDtoH(ys, dy, m * 4))
    print("library kernel launched twice: sum", sum(ys))
    print("library kernel that does not exist:", error(cuda.cuLibraryGetKernel(lib, b"no_such_kernel")))
    lib2 = check(cuda.cuLibraryLoadFromFile(ptx_path.encode(), [], [], 0, [], [], 0))
    k2 = check(cuda.cuLibraryGetKernel(lib2, b"vector_add"))
    print("library from a file: vector_add has",
          len([i for i in range(8) if error(cuda.cuKernelGetParamInfo(k2, i)) == "CUDA_SUCCESS"]),
          "parameters")
    check(cuda.cuLibraryUnload(lib2))
    check(cuda.cuLibraryUnload(lib))
    print("a library unloaded:", error(cuda.cuLibraryGetKernel(lib, b"scale_inplace")))
    check(cuda.cuMemFree(dy))

    # Smaller queries: the device, the context, a function's module, a
    # stream's capture status, occupancy, the profiler.
    print("PCI bus id:", check(cuda.cuDeviceGetPCIBusId(32, dev)).split(b"\0")[0].decode())
    print("can access itself as a peer:", check(cuda.cuDeviceCanAccessPeer(dev, dev)))
    print("stream priority range:", check(cuda.cuCtxGetStreamPriorityRange()))
    check(cuda.cuCtxSetCacheConfig(cuda.CUfunc_cache.CU_FUNC_CACHE_PREFER_SHARED))
    print("cache config:", check(cuda.cuCtxGetCacheConfig()))
    print("context id is stable:", int(check(cuda.cuCtxGetId(ctx))) == int(check(cuda.cuCtxGetId(ctx))))
    module = check(cuda.cuModuleLoadData(image))
    scale = check(cuda.cuModuleGetFunction(module, b"scale_inplace"))
    print("a function's module is its module:", int(check(cuda.cuFuncGetModule(scale))) == int(module))
    print("occupancy: block size found:",
          check(cuda.cuOccupancyMaxPotentialBlockSizeWithFlags(scale, 0, 0, 0, 0))[1] > 0)
    check(cuda.cuModuleUnload(module))
    print("stream capturing:", check(cuda.cuStreamIsCapturing(stream)))
    check(cuda.cuProfilerStart())
    check(cuda.cuProfilerStop())

    # Several pointer attributes at once, of device memory and of an
    # address the driver does not know (zeros, and success).
    PA = cuda.CUpointer_attribute
    attrs = [PA.CU_POINTER_ATTRIBUTE_MEMORY_TYPE, PA.CU_POINTER_ATTRIBUTE_RANGE_SIZE,
             PA.CU_POINTER_ATTRIBUTE_IS_MANAGED]
    values = check(cuda.cuPointerGetAttributes(len(attrs), attrs, d1))
    print("pointer attributes of device memory:", [int(v) for v in values])
    values = check(cuda.cuPointerGetAttributes(len(attrs), attrs, ctypes.addressof(src)))
    print("pointer attributes of pageable memory:", [int(v) for v in values])

    for p in (d1, d2, dp, d3, dv, dv2):
        check(cuda.cuMemFree(p))
    check(cuda.cuStreamDestroy(stream))
    check(cuda.cuDevicePrimaryCtxRelease(dev))
    print("ok")


if __name__ == "__main__":
    main()
