#!/usr/bin/python3
"""pyopencl_demo.py - vector addition and reductions with PyOpenCL.

Uses the first platform and its first device. Prints the device name, the
checked results of an elementwise vector addition (a hand-written kernel),
a sum and a dot product through pyopencl.reduction.ReductionKernel, and
pyopencl.array's sum/max. Inputs are small integers stored as float32, so
every sum is exact and the output is deterministic. Exits non-zero on any
error (pyopencl raises pyopencl.Error with the OpenCL error code).
"""
import sys

import numpy as np
import pyopencl as cl
import pyopencl.array as cl_array
from pyopencl.reduction import ReductionKernel

N = 1 << 20


def main():
    platform = cl.get_platforms()[0]
    device = platform.get_devices()[0]
    print("device:", device.name)
    ctx = cl.Context([device])
    queue = cl.CommandQueue(ctx)

    idx = np.arange(N, dtype=np.int64)
    a = (idx % 1000).astype(np.float32)
    b = (idx // 1000).astype(np.float32) * np.float32(0.25)

    # Vector addition with a hand-written kernel and plain buffers.
    mf = cl.mem_flags
    da = cl.Buffer(ctx, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=a)
    db = cl.Buffer(ctx, mf.READ_ONLY, b.nbytes)
    cl.enqueue_copy(queue, db, b)
    dc = cl.Buffer(ctx, mf.WRITE_ONLY, a.nbytes)
    prg = cl.Program(ctx, """
        __kernel void vecadd(__global const float *a, __global const float *b,
                             __global float *c) {
            size_t i = get_global_id(0);
            c[i] = a[i] + b[i];
        }
    """).build()
    prg.vecadd(queue, (N,), None, da, db, dc)
    c = np.empty_like(a)
    cl.enqueue_copy(queue, c, dc)
    queue.finish()
    print("vecadd: n=%d mismatches=%d" % (N, int(np.count_nonzero(c != a + b))))
    print("vecadd: c[0]=%.2f c[999]=%.2f c[N-1]=%.2f" % (c[0], c[999], c[N - 1]))
    print("vecadd checksum: %.2f" % float(np.sum(c.astype(np.float64))))

    # Reductions on device arrays.
    ga = cl_array.to_device(queue, a)
    gb = cl_array.to_device(queue, b)
    total = ReductionKernel(ctx, np.float64, neutral="0",
                            reduce_expr="a+b", map_expr="(double)x[i]",
                            arguments="__global const float *x")
    dot = ReductionKernel(ctx, np.float64, neutral="0",
                          reduce_expr="a+b", map_expr="(double)x[i]*(double)y[i]",
                          arguments="__global const float *x, __global const float *y")
    s = total(ga).get()
    d = dot(ga, gb).get()
    print("reduction sum(a): %.1f (host %.1f)" % (s, float(np.sum(a, dtype=np.float64))))
    print("reduction dot(a, b): %.2f (host %.2f)"
          % (d, float(np.dot(a.astype(np.float64), b.astype(np.float64)))))
    print("array max(b): %.2f" % float(cl_array.max(gb).get()))
    print("array sum(a+b): %.1f"
          % float(cl_array.sum((ga + gb).astype(np.float64)).get()))
    ok = (s == float(np.sum(a, dtype=np.float64))
          and abs(d - float(np.dot(a.astype(np.float64), b.astype(np.float64)))) < 1e-6)
    print("reductions match host:", "yes" if ok else "no")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
