/*
 * info_handles.c - object handles returned by the clGet*Info queries.
 *
 * Every query whose value is an object (the context of a queue, the devices
 * of a program, the buffer a sub-buffer belongs to, ...) must return the
 * very handle the program got when it created or looked up that object.
 * Prints one line per query with "same" or "DIFFERENT", and uses every
 * returned handle once in a further call (so a handle that only looks
 * right but is not usable shows too). Uses the first platform and its first
 * device; exits non-zero (printing the error code) on any OpenCL error, and
 * with status 2 if a handle differs.
 */
#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 300
#endif
#include <CL/cl.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK(call)                                                        \
    do {                                                                   \
        cl_int err_ = (call);                                              \
        if (err_ != CL_SUCCESS) {                                          \
            printf("OpenCL error %d at %s:%d: %s\n", err_, __FILE__,       \
                   __LINE__, #call);                                       \
            exit(1);                                                       \
        }                                                                  \
    } while (0)

static int differences = 0;

static void same(const char *query, const void *got, const void *want) {
    printf("%-56s %s\n", query, got == want ? "same" : "DIFFERENT");
    if (got != want) differences++;
}

static const char *source = "__kernel void k(__global int *x) { x[get_global_id(0)] += 1; }\n";

int main(void) {
    cl_int err;
    cl_platform_id platform;
    cl_device_id device;
    CHECK(clGetPlatformIDs(1, &platform, NULL));
    CHECK(clGetDeviceIDs(platform, CL_DEVICE_TYPE_ALL, 1, &device, NULL));
    cl_context ctx = clCreateContext(NULL, 1, &device, NULL, NULL, &err);
    CHECK(err);
    cl_command_queue q = clCreateCommandQueueWithProperties(ctx, device, NULL, &err);
    CHECK(err);
    cl_program prog = clCreateProgramWithSource(ctx, 1, &source, NULL, &err);
    CHECK(err);
    CHECK(clBuildProgram(prog, 1, &device, NULL, NULL, NULL));
    cl_kernel k = clCreateKernel(prog, "k", &err);
    CHECK(err);
    cl_mem buf = clCreateBuffer(ctx, CL_MEM_READ_WRITE, 512, NULL, &err);
    CHECK(err);
    cl_event user = clCreateUserEvent(ctx, &err);
    CHECK(err);

    cl_platform_id p;
    cl_device_id d;
    cl_context c;
    cl_program pr;
    cl_mem m;
    cl_command_queue cq;
    size_t size;

    CHECK(clGetDeviceInfo(device, CL_DEVICE_PLATFORM, sizeof p, &p, NULL));
    same("clGetDeviceInfo(CL_DEVICE_PLATFORM)", p, platform);
    CHECK(clGetContextInfo(ctx, CL_CONTEXT_DEVICES, sizeof d, &d, NULL));
    same("clGetContextInfo(CL_CONTEXT_DEVICES)", d, device);
    CHECK(clGetCommandQueueInfo(q, CL_QUEUE_CONTEXT, sizeof c, &c, NULL));
    same("clGetCommandQueueInfo(CL_QUEUE_CONTEXT)", c, ctx);
    CHECK(clGetCommandQueueInfo(q, CL_QUEUE_DEVICE, sizeof d, &d, NULL));
    same("clGetCommandQueueInfo(CL_QUEUE_DEVICE)", d, device);
    CHECK(clGetMemObjectInfo(buf, CL_MEM_CONTEXT, sizeof c, &c, NULL));
    same("clGetMemObjectInfo(CL_MEM_CONTEXT)", c, ctx);
    CHECK(clGetProgramInfo(prog, CL_PROGRAM_CONTEXT, sizeof c, &c, NULL));
    same("clGetProgramInfo(CL_PROGRAM_CONTEXT)", c, ctx);
    CHECK(clGetProgramInfo(prog, CL_PROGRAM_DEVICES, sizeof d, &d, NULL));
    same("clGetProgramInfo(CL_PROGRAM_DEVICES)", d, device);
    CHECK(clGetKernelInfo(k, CL_KERNEL_CONTEXT, sizeof c, &c, NULL));
    same("clGetKernelInfo(CL_KERNEL_CONTEXT)", c, ctx);
    CHECK(clGetKernelInfo(k, CL_KERNEL_PROGRAM, sizeof pr, &pr, NULL));
    same("clGetKernelInfo(CL_KERNEL_PROGRAM)", pr, prog);
    CHECK(clGetEventInfo(user, CL_EVENT_CONTEXT, sizeof c, &c, NULL));
    same("clGetEventInfo(CL_EVENT_CONTEXT)", c, ctx);
    CHECK(clGetEventInfo(user, CL_EVENT_COMMAND_QUEUE, sizeof cq, &cq, NULL));
    same("clGetEventInfo(CL_EVENT_COMMAND_QUEUE) of a user event", cq, NULL);

    /* Use the handles returned by the queries. */
    char name[256];
    CHECK(clGetProgramInfo(prog, CL_PROGRAM_DEVICES, sizeof d, &d, NULL));
    CHECK(clGetDeviceInfo(d, CL_DEVICE_NAME, sizeof name, name, NULL));
    cl_build_status status;
    CHECK(clGetProgramBuildInfo(prog, d, CL_PROGRAM_BUILD_STATUS, sizeof status, &status, NULL));
    printf("%-56s %d\n", "build status via the program's device", status);
    CHECK(clGetCommandQueueInfo(q, CL_QUEUE_DEVICE, sizeof d, &d, NULL));
    CHECK(clGetDeviceInfo(d, CL_DEVICE_NAME, sizeof name, name, NULL));
    printf("%-56s ok\n", "device name via the queue's device");
    cl_uint nargs;
    CHECK(clGetKernelInfo(k, CL_KERNEL_PROGRAM, sizeof pr, &pr, NULL));
    CHECK(clGetProgramInfo(pr, CL_PROGRAM_NUM_KERNELS, sizeof size, &size, NULL));
    CHECK(clGetKernelInfo(k, CL_KERNEL_NUM_ARGS, sizeof nargs, &nargs, NULL));
    printf("%-56s %zu kernel(s), %u arg(s)\n", "program via the kernel", size, nargs);

    /* A sub-buffer: bytes 128..255 of buf (an origin aligned for any
     * device), its parent, and a kernel run on it. */
    cl_buffer_region region = {128, 128};
    cl_mem sub = clCreateSubBuffer(buf, CL_MEM_READ_WRITE, CL_BUFFER_CREATE_TYPE_REGION, &region, &err);
    CHECK(err);
    CHECK(clGetMemObjectInfo(sub, CL_MEM_ASSOCIATED_MEMOBJECT, sizeof m, &m, NULL));
    same("clGetMemObjectInfo(CL_MEM_ASSOCIATED_MEMOBJECT)", m, buf);
    CHECK(clGetMemObjectInfo(sub, CL_MEM_SIZE, sizeof size, &size, NULL));
    printf("%-56s %zu\n", "sub-buffer size", size);
    int host[128] = {0};
    CHECK(clEnqueueWriteBuffer(q, buf, CL_TRUE, 0, sizeof host, host, 0, NULL, NULL));
    CHECK(clSetKernelArg(k, 0, sizeof sub, &sub));
    size_t global = 128 / sizeof(int);
    CHECK(clEnqueueNDRangeKernel(q, k, 1, NULL, &global, NULL, 0, NULL, NULL));
    CHECK(clEnqueueReadBuffer(q, buf, CL_TRUE, 0, sizeof host, host, 0, NULL, NULL));
    int ones = 0;
    for (int i = 0; i < 128; i++) ones += host[i];
    printf("%-56s %d of 128 ints incremented (ints 32..63: %s)\n", "kernel on the sub-buffer", ones,
           host[31] == 0 && host[32] == 1 && host[63] == 1 && host[64] == 0 ? "yes" : "no");

    CHECK(clSetUserEventStatus(user, CL_COMPLETE));
    CHECK(clReleaseEvent(user));
    CHECK(clReleaseMemObject(sub));
    CHECK(clReleaseMemObject(buf));
    CHECK(clReleaseKernel(k));
    CHECK(clReleaseProgram(prog));
    CHECK(clReleaseCommandQueue(q));
    CHECK(clReleaseContext(ctx));
    printf("handles that differ: %d\n", differences);
    return differences ? 2 : 0;
}
