/*
 * inplace.c - buffer reads and writes in every form a program mixes them:
 * large blocking writes and reads, partial ones at offsets, non-blocking
 * writes, writes that return an event, reads that wait for events,
 * sub-buffers, buffers created from host data, and the errors an
 * out-of-range read or a queue of another context give. (An out-of-range
 * write is left out: remoted, writes are asynchronous and its error is
 * logged, not returned; see docs/opencl.md.)
 *
 * Remoted, a buffer may live in the region's heap, where the guest library
 * reads and writes it in place; this program checks that every form still
 * orders with the kernels around it. It prints checksums and error codes
 * (identical natively and remoted) and exits with the number of checks that
 * failed, or 100 if the setup fails. Uses the first platform and device.
 */
#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 300
#endif
#include <CL/cl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SETUP(call)                                                        \
    do {                                                                   \
        cl_int err_ = (call);                                              \
        if (err_ != CL_SUCCESS) {                                          \
            printf("OpenCL error %d in setup at %s:%d: %s\n", err_,        \
                   __FILE__, __LINE__, #call);                             \
            exit(100);                                                     \
        }                                                                  \
    } while (0)

#define N (1u << 20) /* elements: 4 MiB of uint */

static int failures = 0;

static void check(const char *what, int ok) {
    printf("%-48s %s\n", what, ok ? "ok" : "FAILED");
    if (!ok) failures++;
}

static uint64_t sum(const cl_uint *v, size_t n) {
    uint64_t s = 0;
    for (size_t i = 0; i < n; i++) s = s * 31 + v[i];
    return s;
}

static const char *source =
    "__kernel void advance(__global uint *a) {\n"
    "    size_t i = get_global_id(0);\n"
    "    a[i] = a[i] * 3u + (uint)i;\n"
    "}\n";

int main(void) {
    cl_platform_id platform;
    cl_device_id device;
    cl_int err;
    SETUP(clGetPlatformIDs(1, &platform, NULL));
    SETUP(clGetDeviceIDs(platform, CL_DEVICE_TYPE_ALL, 1, &device, NULL));
    cl_context ctx = clCreateContext(NULL, 1, &device, NULL, NULL, &err);
    SETUP(err);
    cl_command_queue q = clCreateCommandQueueWithProperties(ctx, device, NULL, &err);
    SETUP(err);
    cl_program prog = clCreateProgramWithSource(ctx, 1, &source, NULL, &err);
    SETUP(err);
    SETUP(clBuildProgram(prog, 1, &device, "", NULL, NULL));
    cl_kernel k = clCreateKernel(prog, "advance", &err);
    SETUP(err);

    size_t bytes = N * sizeof(cl_uint), global = N;
    /* 4 KiB spare in each: the out-of-range read below names more than the
       buffer holds, and a remoting library may copy what the call names. */
    cl_uint *host = calloc(1, bytes + 4096), *want = calloc(1, bytes + 4096),
            *got = calloc(1, bytes + 4096);
    for (size_t i = 0; i < N; i++) host[i] = (cl_uint)(i * 2654435761u);

    /* 1. Blocking write, kernel, blocking read. */
    cl_mem a = clCreateBuffer(ctx, CL_MEM_READ_WRITE, bytes, NULL, &err);
    SETUP(err);
    SETUP(clSetKernelArg(k, 0, sizeof a, &a));
    SETUP(clEnqueueWriteBuffer(q, a, CL_TRUE, 0, bytes, host, 0, NULL, NULL));
    SETUP(clEnqueueNDRangeKernel(q, k, 1, NULL, &global, NULL, 0, NULL, NULL));
    SETUP(clEnqueueReadBuffer(q, a, CL_TRUE, 0, bytes, got, 0, NULL, NULL));
    for (size_t i = 0; i < N; i++) want[i] = host[i] * 3u + (cl_uint)i;
    check("write, kernel, read", memcmp(got, want, bytes) == 0);
    printf("checksum 1: %llu\n", (unsigned long long)sum(got, N));

    /* 2. A partial read at an odd offset; a partial write, kernel, read. */
    memset(got, 0, bytes);
    SETUP(clEnqueueReadBuffer(q, a, CL_TRUE, 12345, 100000, (char *)got + 7, 0, NULL, NULL));
    check("partial read at an offset", memcmp((char *)got + 7, (char *)want + 12345, 100000) == 0);
    SETUP(clEnqueueWriteBuffer(q, a, CL_TRUE, 4096 * 3, 200000, host, 0, NULL, NULL));
    memcpy((char *)want + 4096 * 3, host, 200000);
    SETUP(clEnqueueNDRangeKernel(q, k, 1, NULL, &global, NULL, 0, NULL, NULL));
    for (size_t i = 0; i < N; i++) want[i] = want[i] * 3u + (cl_uint)i;
    SETUP(clEnqueueReadBuffer(q, a, CL_TRUE, 0, bytes, got, 0, NULL, NULL));
    check("partial write, kernel, read", memcmp(got, want, bytes) == 0);

    /* 3. A non-blocking write, a kernel, then a blocking read. */
    SETUP(clEnqueueWriteBuffer(q, a, CL_FALSE, 0, bytes, host, 0, NULL, NULL));
    SETUP(clEnqueueNDRangeKernel(q, k, 1, NULL, &global, NULL, 0, NULL, NULL));
    SETUP(clEnqueueReadBuffer(q, a, CL_TRUE, 0, bytes, got, 0, NULL, NULL));
    for (size_t i = 0; i < N; i++) want[i] = host[i] * 3u + (cl_uint)i;
    check("non-blocking write, kernel, read", memcmp(got, want, bytes) == 0);

    /* 4. A write that returns an event; a read that waits for it. */
    cl_event ev;
    for (size_t i = 0; i < N; i++) host[i] ^= 0x5a5a5a5au;
    SETUP(clEnqueueWriteBuffer(q, a, CL_TRUE, 0, bytes, host, 0, NULL, &ev));
    cl_command_type type = 0;
    SETUP(clGetEventInfo(ev, CL_EVENT_COMMAND_TYPE, sizeof type, &type, NULL));
    check("the write's event is a write", type == CL_COMMAND_WRITE_BUFFER);
    SETUP(clEnqueueReadBuffer(q, a, CL_FALSE, 0, bytes, got, 1, &ev, NULL));
    SETUP(clFinish(q));
    check("read waiting for the write's event", memcmp(got, host, bytes) == 0);
    SETUP(clReleaseEvent(ev));

    /* 5. A sub-buffer of the buffer. */
    cl_buffer_region r = {1 << 20, 1 << 16};
    cl_mem sub = clCreateSubBuffer(a, CL_MEM_READ_WRITE, CL_BUFFER_CREATE_TYPE_REGION, &r, &err);
    SETUP(err);
    memset(got, 0, r.size);
    SETUP(clEnqueueReadBuffer(q, sub, CL_TRUE, 0, r.size, got, 0, NULL, NULL));
    check("sub-buffer read", memcmp(got, (char *)host + r.origin, r.size) == 0);

    /* 6. A buffer created from host data, read back. */
    cl_mem b = clCreateBuffer(ctx, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, bytes, want, &err);
    SETUP(err);
    SETUP(clEnqueueReadBuffer(q, b, CL_TRUE, 0, bytes, got, 0, NULL, NULL));
    check("buffer from host data", memcmp(got, want, bytes) == 0);
    printf("checksum 6: %llu\n", (unsigned long long)sum(got, N));

    /* 7. Errors. */
    err = clEnqueueReadBuffer(q, b, CL_TRUE, bytes - 8, 16, got, 0, NULL, NULL);
    printf("read past the end: %d\n", err);
    check("read past the end is CL_INVALID_VALUE", err == CL_INVALID_VALUE);
    cl_context ctx2 = clCreateContext(NULL, 1, &device, NULL, NULL, &err);
    SETUP(err);
    cl_command_queue q2 = clCreateCommandQueueWithProperties(ctx2, device, NULL, &err);
    SETUP(err);
    err = clEnqueueReadBuffer(q2, b, CL_TRUE, 0, bytes, got, 0, NULL, NULL);
    printf("read on another context's queue: %d\n", err);
    check("another context's queue is CL_INVALID_CONTEXT", err == CL_INVALID_CONTEXT);

    SETUP(clReleaseCommandQueue(q2));
    SETUP(clReleaseContext(ctx2));
    SETUP(clReleaseMemObject(sub));
    SETUP(clReleaseMemObject(b));
    SETUP(clReleaseMemObject(a));
    SETUP(clReleaseKernel(k));
    SETUP(clReleaseProgram(prog));
    SETUP(clReleaseCommandQueue(q));
    SETUP(clReleaseContext(ctx));
    free(host);
    free(want);
    free(got);
    printf("failures: %d\n", failures);
    return failures;
}
