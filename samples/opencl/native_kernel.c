/*
 * clEnqueueNativeKernel: a function of this program that the device runs
 * on a copy of its arguments, in which the buffers named are replaced by
 * pointers to their contents. The function doubles one buffer into
 * another and adds a constant; a kernel then reads the result; the events
 * and the errors of invalid calls are printed. The same natively and
 * remoted.
 */
#define CL_TARGET_OPENCL_VERSION 300
#include <CL/cl.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK(x)                                                                         \
    do {                                                                                 \
        cl_int e_ = (x);                                                                 \
        if (e_ != CL_SUCCESS) {                                                          \
            fprintf(stderr, "%s:%d: %s failed: %d\n", __FILE__, __LINE__, #x, e_);       \
            exit(1);                                                                     \
        }                                                                                \
    } while (0)

struct args {
    int *in;  /* replaced by the device */
    int *out; /* replaced by the device */
    int n;
    int add;
};

static void CL_CALLBACK twice_plus(void *p) {
    struct args *a = p;
    for (int i = 0; i < a->n; i++) a->out[i] = 2 * a->in[i] + a->add;
}

static const char *src =
    "kernel void sum(global const int *a, global int *s, int n) {"
    "  int t = 0; for (int i = 0; i < n; i++) t += a[i]; s[0] = t; }";

int main(void) {
    cl_platform_id platform;
    cl_device_id device;
    cl_int err;
    CHECK(clGetPlatformIDs(1, &platform, NULL));
    CHECK(clGetDeviceIDs(platform, CL_DEVICE_TYPE_ALL, 1, &device, NULL));
    cl_device_exec_capabilities caps = 0;
    CHECK(clGetDeviceInfo(device, CL_DEVICE_EXECUTION_CAPABILITIES, sizeof caps, &caps, NULL));
    printf("native kernels: %s\n", caps & CL_EXEC_NATIVE_KERNEL ? "yes" : "no");
    if (!(caps & CL_EXEC_NATIVE_KERNEL)) return 0;
    cl_context ctx = clCreateContext(NULL, 1, &device, NULL, NULL, &err);
    CHECK(err);
    cl_command_queue q = clCreateCommandQueueWithProperties(ctx, device, NULL, &err);
    CHECK(err);
    enum { N = 1000 };
    int host[N];
    for (int i = 0; i < N; i++) host[i] = i;
    cl_mem in = clCreateBuffer(ctx, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, sizeof host, host, &err);
    CHECK(err);
    cl_mem out = clCreateBuffer(ctx, CL_MEM_READ_WRITE, sizeof host, NULL, &err);
    CHECK(err);
    struct args a = {NULL, NULL, N, 7};
    cl_mem mems[2] = {in, out};
    const void *locs[2] = {&a.in, &a.out};
    cl_event ran;
    CHECK(clEnqueueNativeKernel(q, twice_plus, &a, sizeof a, 2, mems, locs, 0, NULL, &ran));
    CHECK(clWaitForEvents(1, &ran));
    cl_command_type type = 0;
    CHECK(clGetEventInfo(ran, CL_EVENT_COMMAND_TYPE, sizeof type, &type, NULL));
    printf("native kernel ran: event command type %#x\n", type);
    printf("the program's own arguments untouched: %s\n", a.in == NULL && a.out == NULL ? "yes" : "no");
    /* A kernel reads what the native kernel wrote. */
    cl_program prog = clCreateProgramWithSource(ctx, 1, &src, NULL, &err);
    CHECK(err);
    CHECK(clBuildProgram(prog, 1, &device, NULL, NULL, NULL));
    cl_kernel k = clCreateKernel(prog, "sum", &err);
    CHECK(err);
    cl_mem s = clCreateBuffer(ctx, CL_MEM_READ_WRITE, sizeof(int), NULL, &err);
    CHECK(err);
    int n = N;
    CHECK(clSetKernelArg(k, 0, sizeof out, &out));
    CHECK(clSetKernelArg(k, 1, sizeof s, &s));
    CHECK(clSetKernelArg(k, 2, sizeof n, &n));
    size_t one = 1;
    CHECK(clEnqueueNDRangeKernel(q, k, 1, NULL, &one, NULL, 1, &ran, NULL));
    int total = 0, back[N];
    CHECK(clEnqueueReadBuffer(q, s, CL_TRUE, 0, sizeof total, &total, 0, NULL, NULL));
    CHECK(clEnqueueReadBuffer(q, out, CL_TRUE, 0, sizeof back, back, 0, NULL, NULL));
    printf("out[0] = %d, out[999] = %d, sum by a kernel = %d\n", back[0], back[N - 1], total);
    CHECK(clReleaseEvent(ran));

    /* Without memory objects. */
    struct args b = {host, host, 10, 1};
    CHECK(clEnqueueNativeKernel(q, twice_plus, &b, sizeof b, 0, NULL, NULL, 0, NULL, NULL));
    CHECK(clFinish(q));
    printf("on the program's own memory: host[9] = %d\n", host[9]);

    /* Errors. */
    printf("no function: %d\n", clEnqueueNativeKernel(q, NULL, &a, sizeof a, 0, NULL, NULL, 0, NULL, NULL));
    printf("arguments without a size: %d\n",
           clEnqueueNativeKernel(q, twice_plus, &a, 0, 0, NULL, NULL, 0, NULL, NULL));
    printf("objects without locations: %d\n",
           clEnqueueNativeKernel(q, twice_plus, &a, sizeof a, 2, mems, NULL, 0, NULL, NULL));
    CHECK(clFinish(q));
    clReleaseKernel(k);
    clReleaseProgram(prog);
    clReleaseMemObject(in);
    clReleaseMemObject(out);
    clReleaseMemObject(s);
    clReleaseCommandQueue(q);
    clReleaseContext(ctx);
    printf("done\n");
    return 0;
}
