"""PyOpenCL's higher-level features, each checked against numpy on the
host: element-wise kernels, prefix sums (scans), pyopencl.array arithmetic
and slicing, random numbers (pyopencl.clrandom, compared run against run
by their statistics and by a second identical generator), sorting through
a radix sort, mapped buffers, and shared virtual memory (a NumPy array
in SVM, mapped, handed to a kernel, copied to and from). Prints one line per
feature; the output is the same natively and remoted."""
import numpy as np
import pyopencl as cl
import pyopencl.array as cl_array
import pyopencl.clrandom as clrandom
from pyopencl.elementwise import ElementwiseKernel
from pyopencl.scan import GenericScanKernel, InclusiveScanKernel

ctx = cl.Context([cl.get_platforms()[0].get_devices()[0]])
queue = cl.CommandQueue(ctx)
n = 100_000
host = (np.arange(n) % 97).astype(np.float32)
a = cl_array.to_device(queue, host)

lin = ElementwiseKernel(ctx, "float k, float *x, float *z", "z[i] = k * x[i] + 1.0f", "lin")
z = cl_array.empty_like(a)
lin(np.float32(2.0), a, z)
print("elementwise:", bool(np.array_equal(z.get(), 2 * host + 1)))

ints = cl_array.to_device(queue, (np.arange(n) % 13).astype(np.int32))
inc = InclusiveScanKernel(ctx, np.int32, "a+b", neutral="0")
scanned = inc(ints.copy()).get()
print("inclusive scan:", bool(np.array_equal(scanned, np.cumsum(np.arange(n) % 13, dtype=np.int32))))
excl = GenericScanKernel(
    ctx, np.int32, arguments="__global int *ary, __global int *out",
    input_expr="ary[i]", scan_expr="a+b", neutral="0",
    output_statement="out[i] = prev_item")
out = cl_array.empty_like(ints)
excl(ints, out)
ref = np.concatenate([[0], np.cumsum(np.arange(n) % 13)[:-1]]).astype(np.int32)
print("exclusive scan:", bool(np.array_equal(out.get(), ref)))

b = cl_array.to_device(queue, host[::-1].copy())
c = (a * 3 - b) / 2
print("array arithmetic:", bool(np.allclose(c.get(), (host * 3 - host[::-1]) / 2)))
print("array slice:", bool(np.array_equal(a[1000:2000].get(), host[1000:2000])))
dot = float(cl_array.dot(a, b).get())
ref_dot = float(np.dot(host.astype(np.float64), host[::-1].astype(np.float64)))
print("array dot:", abs(dot - ref_dot) <= 1e-5 * ref_dot)

r1 = clrandom.PhiloxGenerator(ctx, seed=7).uniform(queue, n, np.float32).get()
r2 = clrandom.PhiloxGenerator(ctx, seed=7).uniform(queue, n, np.float32).get()
print("random repeatable:", bool(np.array_equal(r1, r2)))
print("random uniform:", bool(0.0 <= r1.min() and r1.max() <= 1.0 and abs(float(r1.mean()) - 0.5) < 0.01))
print("random first values: %.6f %.6f" % (r1[0], r1[1]))

from pyopencl.algorithm import RadixSort
keys = cl_array.to_device(queue, ((np.arange(n) * 7919) % 100003).astype(np.uint32))
sort = RadixSort(ctx, "unsigned *ary", key_expr="ary[i]", sort_arg_names=["ary"])
(sorted_keys,), _ = sort(keys, key_bits=17)
print("radix sort:", bool(np.array_equal(sorted_keys.get(), np.sort(keys.get()))))

buf = cl.Buffer(ctx, cl.mem_flags.READ_WRITE, host.nbytes)
cl.enqueue_copy(queue, buf, host)
mapped, _ = cl.enqueue_map_buffer(queue, buf, cl.map_flags.READ | cl.map_flags.WRITE, 0, host.shape, host.dtype)
same = bool(np.array_equal(mapped, host))
mapped[:10] = -1
mapped.base.release(queue)
back = np.empty_like(host)
cl.enqueue_copy(queue, back, buf)
print("mapped buffer:", same and bool((back[:10] == -1).all()) and bool(np.array_equal(back[10:], host[10:])))
queue.finish()

svm_ary = cl.svm_empty(ctx, cl.svm_mem_flags.READ_WRITE, n, np.float32, alignment=0)
svm = cl.SVM(svm_ary)
with svm.map_rw(queue) as m:
    m[:] = host
twice = cl.Program(ctx, "__kernel void twice(__global float *a) { a[get_global_id(0)] *= 2; }").build()
twice.twice(queue, svm_ary.shape, None, svm)
copied = np.empty_like(host)
cl.enqueue_copy(queue, copied, svm)
with svm.map_ro(queue) as m:
    in_svm = bool(np.array_equal(m, 2 * host))
print("shared virtual memory:", in_svm and bool(np.array_equal(copied, 2 * host)))
queue.finish()
print("done")
