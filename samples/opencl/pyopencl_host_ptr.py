"""PyOpenCL with a CL_MEM_USE_HOST_PTR buffer: its host array is the
program's own array, and after a kernel and a map the kernel's results are
in it. Prints what it finds (the same natively and remoted)."""
import numpy as np
import pyopencl as cl

ctx = cl.create_some_context(interactive=False)
queue = cl.CommandQueue(ctx)
a = np.arange(1024, dtype=np.float32)
flags = cl.mem_flags.READ_WRITE | cl.mem_flags.USE_HOST_PTR
buf = cl.Buffer(ctx, flags, hostbuf=a)
host = buf.get_host_array(a.shape, a.dtype)
print("host array is the program's:", host.ctypes.data == a.ctypes.data)
print("flags:", buf.get_info(cl.mem_info.FLAGS) == flags)
prg = cl.Program(ctx, "__kernel void twice(__global float* x) { x[get_global_id(0)] *= 2.0f; }").build()
prg.twice(queue, a.shape, None, buf)
mapped, _ = cl.enqueue_map_buffer(queue, buf, cl.map_flags.READ, 0, a.shape, a.dtype)
print("mapped at the program's array:", mapped.ctypes.data == a.ctypes.data)
print("results in the program's array:", bool((a == 2 * np.arange(1024, dtype=np.float32)).all()))
mapped.base.release(queue)
queue.finish()
print("done")
