/*
 * error_matrix.c - invalid calls across the OpenCL API, one per line, each
 * with the code it returned: objects, queries, kernels, events, and the
 * enqueue calls (marked "enqueue"), asynchronous ones included.
 *
 * The cases are the specification's definite errors; which code a driver
 * picks when a call is wrong in two ways is its own choice, so the output is
 * compared with the same program run natively, not with the specification.
 * The last lines count the cases and those that returned CL_SUCCESS. Valid
 * work queued in between must still run: the program checks a buffer's
 * contents at the end. Exit status 0 unless the set-up fails (100).
 */
#define CL_TARGET_OPENCL_VERSION 300
#define CL_USE_DEPRECATED_OPENCL_1_2_APIS
#include <CL/cl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SETUP(call)                                                            \
    do {                                                                       \
        cl_int err_ = (call);                                                  \
        if (err_ != CL_SUCCESS) {                                              \
            printf("OpenCL error %d in setup at line %d: %s\n", err_,         \
                   __LINE__, #call);                                           \
            exit(100);                                                         \
        }                                                                      \
    } while (0)

static int cases = 0, enqueues = 0, successes = 0;

static void show(const char *kind, const char *what, cl_int got) {
    printf("%-8s %-60s %d\n", kind, what, got);
    cases++;
    if (!strcmp(kind, "enqueue")) enqueues++;
    if (got == CL_SUCCESS) successes++;
}
#define CALL(what, expr) show("call", what, (expr))
#define ENQ(what, expr) show("enqueue", what, (expr))
/* A call that returns an object and reports through its last argument.
   Whether the object is NULL is not compared: the specification says it is,
   but some drivers return a pointer (PoCL's clCreateContextFromType, to a
   context it has freed). */
#define MADE(what, expr)                                                       \
    do {                                                                       \
        cl_int e_ = 12345;                                                     \
        (void)(expr);                                                          \
        show("call", what, e_);                                                \
    } while (0)
#define ERR (&e_)

static const char *SRC =
    "__kernel void fill(__global int *a, int v) { a[get_global_id(0)] = v; }\n"
    "__kernel void loc(__global int *a, __local int *l) {\n"
    "  l[get_local_id(0)] = 1; barrier(CLK_LOCAL_MEM_FENCE);\n"
    "  a[get_global_id(0)] = l[0]; }\n";

static void CL_CALLBACK on_event(cl_event e, cl_int s, void *u) {
    (void)e; (void)s; (void)u;
}

int main(void) {
    cl_int err;
    cl_platform_id pl;
    cl_device_id d;
    SETUP(clGetPlatformIDs(1, &pl, NULL));
    SETUP(clGetDeviceIDs(pl, CL_DEVICE_TYPE_ALL, 1, &d, NULL));
    cl_context ctx = clCreateContext(NULL, 1, &d, NULL, NULL, &err);
    SETUP(err);
    cl_context ctx2 = clCreateContext(NULL, 1, &d, NULL, NULL, &err);
    SETUP(err);
    cl_command_queue q = clCreateCommandQueueWithProperties(ctx, d, NULL, &err);
    SETUP(err);
    cl_command_queue q2 = clCreateCommandQueueWithProperties(ctx2, d, NULL, &err);
    SETUP(err);
    cl_program p = clCreateProgramWithSource(ctx, 1, &SRC, NULL, &err);
    SETUP(err);
    SETUP(clBuildProgram(p, 1, &d, NULL, NULL, NULL));
    cl_program p2 = clCreateProgramWithSource(ctx2, 1, &SRC, NULL, &err);
    SETUP(err);
    SETUP(clBuildProgram(p2, 1, &d, NULL, NULL, NULL));
    cl_kernel k = clCreateKernel(p, "fill", &err);
    SETUP(err);
    cl_kernel k2 = clCreateKernel(p2, "fill", &err);
    SETUP(err);
    cl_kernel kl = clCreateKernel(p, "loc", &err);
    SETUP(err);
    cl_kernel unset = clCreateKernel(p, "fill", &err);
    SETUP(err);
    const size_t N = 1024;
    cl_mem b = clCreateBuffer(ctx, CL_MEM_READ_WRITE, N, NULL, &err);
    SETUP(err);
    cl_mem other = clCreateBuffer(ctx2, CL_MEM_READ_WRITE, N, NULL, &err);
    SETUP(err);
    cl_mem ro = clCreateBuffer(ctx, CL_MEM_READ_WRITE | CL_MEM_HOST_READ_ONLY, N, NULL, &err);
    SETUP(err);
    cl_mem wo = clCreateBuffer(ctx, CL_MEM_READ_WRITE | CL_MEM_HOST_WRITE_ONLY, N, NULL, &err);
    SETUP(err);
    cl_mem none = clCreateBuffer(ctx, CL_MEM_READ_WRITE | CL_MEM_HOST_NO_ACCESS, N, NULL, &err);
    SETUP(err);
    cl_image_format fmt = {CL_RGBA, CL_UNORM_INT8};
    cl_image_desc desc;
    memset(&desc, 0, sizeof desc);
    desc.image_type = CL_MEM_OBJECT_IMAGE2D;
    desc.image_width = 16;
    desc.image_height = 16;
    cl_mem img = clCreateImage(ctx, CL_MEM_READ_WRITE, &fmt, &desc, NULL, &err);
    SETUP(err);
    cl_event user = clCreateUserEvent(ctx, &err);
    SETUP(err);
    cl_event user2 = clCreateUserEvent(ctx2, &err);
    SETUP(err);
    cl_event done = NULL;
    SETUP(clEnqueueMarkerWithWaitList(q, 0, NULL, &done));
    SETUP(clFinish(q));
    int v = 7;
    SETUP(clSetKernelArg(k, 0, sizeof b, &b));
    SETUP(clSetKernelArg(k, 1, sizeof v, &v));
    SETUP(clSetKernelArg(k2, 0, sizeof other, &other));
    SETUP(clSetKernelArg(k2, 1, sizeof v, &v));
    char host[4096];
    memset(host, 0, sizeof host);
    size_t g = 256, g0 = 0, big_local = 1 << 20, l3 = 3, g2[2] = {128, 128};
    size_t o3[3] = {0, 0, 0}, r3[3] = {16, 4, 1}, r0[3] = {0, 4, 1};
    size_t far3[3] = {1000, 0, 0}, ir3[3] = {16, 16, 1}, io3[3] = {8, 8, 0};
    int pattern = 0;
    char pattern3[3] = {0};

    /* Platforms, devices, contexts, queues. */
    CALL("clGetPlatformIDs(0, NULL, NULL)", clGetPlatformIDs(0, NULL, NULL));
    CALL("clGetPlatformInfo(bad name)", clGetPlatformInfo(pl, 0x7fff, sizeof host, host, NULL));
    CALL("clGetDeviceIDs(bad type)", clGetDeviceIDs(pl, 0x100000, 1, &d, NULL));
    CALL("clGetDeviceIDs(0 entries, array)", clGetDeviceIDs(pl, CL_DEVICE_TYPE_ALL, 0, &d, NULL));
    CALL("clGetDeviceInfo(bad name)", clGetDeviceInfo(d, 0x7fff, sizeof host, host, NULL));
    CALL("clGetDeviceInfo(NAME, 1 byte)", clGetDeviceInfo(d, CL_DEVICE_NAME, 1, host, NULL));
    MADE("clCreateContext(0 devices)", clCreateContext(NULL, 0, &d, NULL, NULL, ERR));
    MADE("clCreateContext(NULL devices)", clCreateContext(NULL, 1, NULL, NULL, NULL, ERR));
    {
        cl_context_properties bad[] = {0x7777, 1, 0};
        MADE("clCreateContext(bad property)", clCreateContext(bad, 1, &d, NULL, NULL, ERR));
    }
    MADE("clCreateContextFromType(bad type)",
         clCreateContextFromType(NULL, 0x100000, NULL, NULL, ERR));
    CALL("clGetContextInfo(bad name)", clGetContextInfo(ctx, 0x7fff, sizeof host, host, NULL));
    {
        cl_queue_properties bad[] = {0x7777, 1, 0};
        MADE("clCreateCommandQueueWithProperties(bad property)",
             clCreateCommandQueueWithProperties(ctx, d, bad, ERR));
    }
    MADE("clCreateCommandQueueWithProperties(NULL context)",
         clCreateCommandQueueWithProperties(NULL, d, NULL, ERR));
    CALL("clGetCommandQueueInfo(bad name)", clGetCommandQueueInfo(q, 0x7fff, sizeof host, host, NULL));
    CALL("clFlush(NULL)", clFlush(NULL));
    CALL("clFinish(NULL)", clFinish(NULL));

    /* Memory objects. */
    MADE("clCreateBuffer(READ_ONLY|WRITE_ONLY)",
         clCreateBuffer(ctx, CL_MEM_READ_ONLY | CL_MEM_WRITE_ONLY, 64, NULL, ERR));
    MADE("clCreateBuffer(USE_HOST_PTR, NULL)",
         clCreateBuffer(ctx, CL_MEM_USE_HOST_PTR, 64, NULL, ERR));
    MADE("clCreateBuffer(host_ptr without a flag)",
         clCreateBuffer(ctx, CL_MEM_READ_WRITE, 64, host, ERR));
    MADE("clCreateBuffer(size 0)", clCreateBuffer(ctx, CL_MEM_READ_WRITE, 0, NULL, ERR));
    MADE("clCreateBuffer(NULL context)", clCreateBuffer(NULL, CL_MEM_READ_WRITE, 64, NULL, ERR));
    {
        cl_buffer_region out = {2 * N, 64};
        MADE("clCreateSubBuffer(outside)",
             clCreateSubBuffer(b, 0, CL_BUFFER_CREATE_TYPE_REGION, &out, ERR));
        cl_buffer_region odd = {1, 64};
        MADE("clCreateSubBuffer(misaligned origin)",
             clCreateSubBuffer(b, 0, CL_BUFFER_CREATE_TYPE_REGION, &odd, ERR));
        cl_buffer_region zero = {0, 0};
        MADE("clCreateSubBuffer(size 0)",
             clCreateSubBuffer(b, 0, CL_BUFFER_CREATE_TYPE_REGION, &zero, ERR));
        MADE("clCreateSubBuffer(bad type)", clCreateSubBuffer(b, 0, 0x7777, &zero, ERR));
    }
    MADE("clCreateImage(NULL format)", clCreateImage(ctx, CL_MEM_READ_WRITE, NULL, &desc, NULL, ERR));
    {
        cl_image_desc zero = desc;
        zero.image_width = 0;
        MADE("clCreateImage(width 0)", clCreateImage(ctx, CL_MEM_READ_WRITE, &fmt, &zero, NULL, ERR));
        cl_image_format odd = {CL_RGB, CL_UNORM_INT8};
        MADE("clCreateImage(RGB UNORM_INT8)", clCreateImage(ctx, CL_MEM_READ_WRITE, &odd, &desc, NULL, ERR));
    }
    CALL("clGetMemObjectInfo(bad name)", clGetMemObjectInfo(b, 0x7fff, sizeof host, host, NULL));
    {
        size_t w = 0;
        CALL("clGetImageInfo(of a buffer)", clGetImageInfo(b, CL_IMAGE_WIDTH, sizeof w, &w, NULL));
    }
    CALL("clRetainMemObject(NULL)", clRetainMemObject(NULL));
    {
        cl_uint n = 0;
        CALL("clGetSupportedImageFormats(0 entries, array)",
             clGetSupportedImageFormats(ctx, CL_MEM_READ_WRITE, CL_MEM_OBJECT_IMAGE2D, 0, &fmt, &n));
    }
    {
        cl_sampler_properties bad[] = {0x7777, 1, 0};
        MADE("clCreateSamplerWithProperties(bad property)",
             clCreateSamplerWithProperties(ctx, bad, ERR));
    }

    /* Programs and kernels. */
    MADE("clCreateProgramWithSource(0 strings)", clCreateProgramWithSource(ctx, 0, &SRC, NULL, ERR));
    {
        const unsigned char junk[] = "not a binary";
        const unsigned char *bins[] = {junk};
        size_t len = sizeof junk;
        cl_int st = 0;
        MADE("clCreateProgramWithBinary(junk)",
             clCreateProgramWithBinary(ctx, 1, &d, &len, bins, &st, ERR));
        size_t zero = 0;
        MADE("clCreateProgramWithBinary(length 0)",
             clCreateProgramWithBinary(ctx, 1, &d, &zero, bins, &st, ERR));
    }
    {
        const char *bad = "__kernel void f( { }";
        cl_program pb = clCreateProgramWithSource(ctx, 1, &bad, NULL, &err);
        SETUP(err);
        CALL("clBuildProgram(syntax error)", clBuildProgram(pb, 1, &d, NULL, NULL, NULL));
        MADE("clCreateKernel(of a failed build)", clCreateKernel(pb, "f", ERR));
        clReleaseProgram(pb);
        cl_program pu = clCreateProgramWithSource(ctx, 1, &SRC, NULL, &err);
        SETUP(err);
        MADE("clCreateKernel(of an unbuilt program)", clCreateKernel(pu, "fill", ERR));
        CALL("clBuildProgram(bad options)", clBuildProgram(pu, 1, &d, "-no-such-option", NULL, NULL));
        CALL("clBuildProgram(0 devices, array)", clBuildProgram(pu, 0, &d, NULL, NULL, NULL));
        clReleaseProgram(pu);
    }
    CALL("clGetProgramInfo(bad name)", clGetProgramInfo(p, 0x7fff, sizeof host, host, NULL));
    CALL("clGetProgramBuildInfo(bad name)",
         clGetProgramBuildInfo(p, d, 0x7fff, sizeof host, host, NULL));
    MADE("clCreateKernel(wrong name)", clCreateKernel(p, "nope", ERR));
    MADE("clCreateKernel(NULL name)", clCreateKernel(p, NULL, ERR));
    {
        cl_kernel ks[1];
        CALL("clCreateKernelsInProgram(too few entries)", clCreateKernelsInProgram(p, 1, ks, NULL));
    }
    CALL("clSetKernelArg(index out of range)", clSetKernelArg(k, 9, sizeof b, &b));
    CALL("clSetKernelArg(buffer, wrong size)", clSetKernelArg(unset, 0, 3, &b));
    CALL("clSetKernelArg(int, wrong size)", clSetKernelArg(unset, 1, 2, &v));
    CALL("clSetKernelArg(int, NULL value)", clSetKernelArg(unset, 1, sizeof v, NULL));
    CALL("clSetKernelArg(local, a value)", clSetKernelArg(kl, 1, 64, &v));
    CALL("clSetKernelArg(local, size 0)", clSetKernelArg(kl, 1, 0, NULL));
    CALL("clGetKernelInfo(bad name)", clGetKernelInfo(k, 0x7fff, sizeof host, host, NULL));
    CALL("clGetKernelArgInfo(index out of range)",
         clGetKernelArgInfo(k, 9, CL_KERNEL_ARG_NAME, sizeof host, host, NULL));
    CALL("clGetKernelWorkGroupInfo(bad name)",
         clGetKernelWorkGroupInfo(k, d, 0x7fff, sizeof host, host, NULL));
    CALL("clReleaseKernel(NULL)", clReleaseKernel(NULL));

    /* Events. */
    CALL("clWaitForEvents(0, NULL)", clWaitForEvents(0, NULL));
    {
        cl_event two[2] = {done, user2};
        CALL("clWaitForEvents(two contexts)", clWaitForEvents(2, two));
    }
    MADE("clCreateUserEvent(NULL context)", clCreateUserEvent(NULL, ERR));
    CALL("clSetUserEventStatus(not a user event)", clSetUserEventStatus(done, CL_COMPLETE));
    CALL("clSetUserEventStatus(positive status)", clSetUserEventStatus(user, 5));
    CALL("clSetEventCallback(bad type)", clSetEventCallback(done, 0x7777, on_event, NULL));
    CALL("clSetEventCallback(NULL function)", clSetEventCallback(done, CL_COMPLETE, NULL, NULL));
    {
        cl_ulong t;
        CALL("clGetEventProfilingInfo(no profiling)",
             clGetEventProfilingInfo(done, CL_PROFILING_COMMAND_START, sizeof t, &t, NULL));
    }
    CALL("clGetEventInfo(bad name)", clGetEventInfo(done, 0x7fff, sizeof host, host, NULL));

    /* Enqueue: buffers. */
    ENQ("read, non-blocking, past the end", clEnqueueReadBuffer(q, b, CL_FALSE, N - 8, 64, host, 0, NULL, NULL));
    ENQ("read, blocking, past the end", clEnqueueReadBuffer(q, b, CL_TRUE, 0, N + 1, host, 0, NULL, NULL));
    ENQ("read, NULL pointer", clEnqueueReadBuffer(q, b, CL_FALSE, 0, 64, NULL, 0, NULL, NULL));
    ENQ("read, size 0", clEnqueueReadBuffer(q, b, CL_FALSE, 0, 0, host, 0, NULL, NULL));
    ENQ("read, NULL queue", clEnqueueReadBuffer(NULL, b, CL_FALSE, 0, 64, host, 0, NULL, NULL));
    ENQ("read, NULL buffer", clEnqueueReadBuffer(q, NULL, CL_FALSE, 0, 64, host, 0, NULL, NULL));
    ENQ("read, buffer of another context", clEnqueueReadBuffer(q, other, CL_FALSE, 0, 64, host, 0, NULL, NULL));
    ENQ("read, HOST_WRITE_ONLY buffer", clEnqueueReadBuffer(q, wo, CL_FALSE, 0, 64, host, 0, NULL, NULL));
    ENQ("read, HOST_NO_ACCESS buffer", clEnqueueReadBuffer(q, none, CL_TRUE, 0, 64, host, 0, NULL, NULL));
    ENQ("write, non-blocking, past the end", clEnqueueWriteBuffer(q, b, CL_FALSE, N, 1, host, 0, NULL, NULL));
    ENQ("write, NULL pointer", clEnqueueWriteBuffer(q, b, CL_FALSE, 0, 64, NULL, 0, NULL, NULL));
    ENQ("write, size 0", clEnqueueWriteBuffer(q, b, CL_FALSE, 0, 0, host, 0, NULL, NULL));
    ENQ("write, HOST_READ_ONLY buffer", clEnqueueWriteBuffer(q, ro, CL_FALSE, 0, 64, host, 0, NULL, NULL));
    ENQ("write, event of another context", clEnqueueWriteBuffer(q, b, CL_FALSE, 0, 64, host, 1, &user2, NULL));
    ENQ("write, NULL event in list", clEnqueueWriteBuffer(q, b, CL_FALSE, 0, 64, host, 1, NULL, NULL));
    ENQ("copy, source past the end", clEnqueueCopyBuffer(q, b, b, N - 4, 0, 64, 0, NULL, NULL));
    ENQ("copy, destination past the end", clEnqueueCopyBuffer(q, b, b, 0, N - 4, 64, 0, NULL, NULL));
    ENQ("copy, overlapping", clEnqueueCopyBuffer(q, b, b, 0, 32, 64, 0, NULL, NULL));
    ENQ("copy, size 0", clEnqueueCopyBuffer(q, b, b, 0, 512, 0, 0, NULL, NULL));
    ENQ("copy, buffer of another context", clEnqueueCopyBuffer(q, b, other, 0, 0, 64, 0, NULL, NULL));
    ENQ("fill, pattern size 3", clEnqueueFillBuffer(q, b, pattern3, 3, 0, 60, 0, NULL, NULL));
    ENQ("fill, offset not a multiple", clEnqueueFillBuffer(q, b, &pattern, 4, 2, 64, 0, NULL, NULL));
    ENQ("fill, NULL pattern", clEnqueueFillBuffer(q, b, NULL, 4, 0, 64, 0, NULL, NULL));
    ENQ("fill, past the end", clEnqueueFillBuffer(q, b, &pattern, 4, N, 64, 0, NULL, NULL));
    ENQ("read rect, region with 0", clEnqueueReadBufferRect(q, b, CL_FALSE, o3, o3, r0, 0, 0, 0, 0, host, 0, NULL, NULL));
    ENQ("read rect, past the end", clEnqueueReadBufferRect(q, b, CL_FALSE, far3, o3, r3, 0, 0, 0, 0, host, 0, NULL, NULL));
    ENQ("write rect, row pitch < width", clEnqueueWriteBufferRect(q, b, CL_FALSE, o3, o3, r3, 8, 0, 0, 0, host, 0, NULL, NULL));
    ENQ("copy rect, past the end", clEnqueueCopyBufferRect(q, b, b, far3, o3, r3, 0, 0, 0, 0, 0, NULL, NULL));
    ENQ("map, past the end", (clEnqueueMapBuffer(q, b, CL_TRUE, CL_MAP_READ, N, 64, 0, NULL, NULL, &err), err));
    ENQ("map, WRITE of a HOST_READ_ONLY buffer", (clEnqueueMapBuffer(q, ro, CL_TRUE, CL_MAP_WRITE, 0, 64, 0, NULL, NULL, &err), err));
    ENQ("unmap, a pointer never mapped", clEnqueueUnmapMemObject(q, b, host, 0, NULL, NULL));
    ENQ("migrate, 0 objects", clEnqueueMigrateMemObjects(q, 0, &b, 0, 0, NULL, NULL));
    ENQ("migrate, bad flags", clEnqueueMigrateMemObjects(q, 1, &b, 0x7777, 0, NULL, NULL));

    /* Enqueue: images. */
    ENQ("read image, origin outside", clEnqueueReadImage(q, img, CL_FALSE, io3, ir3, 0, 0, host, 0, NULL, NULL));
    ENQ("read image, of a buffer", clEnqueueReadImage(q, b, CL_FALSE, o3, ir3, 0, 0, host, 0, NULL, NULL));
    ENQ("write image, NULL pointer", clEnqueueWriteImage(q, img, CL_FALSE, o3, ir3, 0, 0, NULL, 0, NULL, NULL));
    ENQ("fill image, NULL color", clEnqueueFillImage(q, img, NULL, o3, ir3, 0, NULL, NULL));
    ENQ("copy image, buffers", clEnqueueCopyImage(q, b, b, o3, o3, ir3, 0, NULL, NULL));

    /* Enqueue: kernels and markers. */
    ENQ("ndrange, kernel of another context", clEnqueueNDRangeKernel(q, k2, 1, NULL, &g, NULL, 0, NULL, NULL));
    ENQ("ndrange, NULL global size", clEnqueueNDRangeKernel(q, k, 1, NULL, NULL, NULL, 0, NULL, NULL));
    ENQ("ndrange, global size 0", clEnqueueNDRangeKernel(q, k, 1, NULL, &g0, NULL, 0, NULL, NULL));
    ENQ("ndrange, local size too large", clEnqueueNDRangeKernel(q, k, 1, NULL, &big_local, &big_local, 0, NULL, NULL));
    ENQ("ndrange, local size does not divide", clEnqueueNDRangeKernel(q, k, 1, NULL, &g, &l3, 0, NULL, NULL));
    ENQ("ndrange, 2 dimensions, local too large", clEnqueueNDRangeKernel(q, k, 2, NULL, g2, g2, 0, NULL, NULL));
    ENQ("ndrange, arguments not set", clEnqueueNDRangeKernel(q, unset, 1, NULL, &g, NULL, 0, NULL, NULL));
    ENQ("ndrange, local argument not set", clEnqueueNDRangeKernel(q, kl, 1, NULL, &g, NULL, 0, NULL, NULL));
    ENQ("task, arguments not set", clEnqueueTask(q, unset, 0, NULL, NULL));
    ENQ("marker, event of another context", clEnqueueMarkerWithWaitList(q, 1, &user2, NULL));
    ENQ("barrier, NULL event in list", clEnqueueBarrierWithWaitList(q, 1, NULL, NULL));
    ENQ("write, queue of another context", clEnqueueWriteBuffer(q2, b, CL_FALSE, 0, 64, host, 0, NULL, NULL));

    /* Valid work queued among the invalid calls still runs. */
    SETUP(clEnqueueNDRangeKernel(q, k, 1, NULL, &g, NULL, 0, NULL, NULL));
    int out[256];
    SETUP(clEnqueueReadBuffer(q, b, CL_TRUE, 0, sizeof out, out, 0, NULL, NULL));
    int good = 0;
    for (int i = 0; i < 256; i++) good += out[i] == v;
    printf("valid kernel after the invalid calls: %d of 256 written\n", good);
    SETUP(clSetUserEventStatus(user, CL_COMPLETE));
    SETUP(clSetUserEventStatus(user2, CL_COMPLETE));
    CALL("clSetUserEventStatus(twice)", clSetUserEventStatus(user, CL_COMPLETE));
    SETUP(clFinish(q));
    SETUP(clFinish(q2));
    printf("cases: %d, enqueue: %d, returned CL_SUCCESS: %d\n", cases, enqueues, successes);
    return 0;
}
