/* vm_vecadd: a small OpenCL program whose output is fully deterministic, so
 * that a run through the guest library (e.g. inside a VM) can be compared
 * byte for byte with a native run on the host.
 *
 * It takes the first device of the first platform, builds two kernels,
 * runs c = a * b + a on N floats and then a second kernel on the result
 * (in place, with a scalar argument), reads back, and prints the device,
 * a few values and checksums, and "vecadd OK" when the results match the
 * same computation done on the CPU.
 *
 * Build: cc -O2 -std=c11 vm_vecadd.c -o vm_vecadd -lOpenCL
 * Usage: vm_vecadd [N]   (default 4096, a multiple of 64)
 */
#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#include <CL/cl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(what, err)                                                  \
    do {                                                                  \
        cl_int e_ = (err);                                                \
        if (e_ != CL_SUCCESS) {                                           \
            fprintf(stderr, "vm_vecadd: %s failed: %d\n", (what), e_);    \
            printf("vecadd FAILED at %s (%d)\n", (what), e_);             \
            return 1;                                                     \
        }                                                                 \
    } while (0)

static const char *SOURCE =
    "__kernel void muladd(__global const float *a, __global const float *b,\n"
    "                     __global float *c, const unsigned int n) {\n"
    "    size_t i = get_global_id(0);\n"
    "    if (i < n) c[i] = a[i] * b[i] + a[i];\n"
    "}\n"
    "__kernel void scale(__global float *c, const float k) {\n"
    "    size_t i = get_global_id(0);\n"
    "    c[i] = c[i] * k - (float)(i % 7);\n"
    "}\n";

int main(int argc, char **argv) {
    cl_uint n = argc > 1 ? (cl_uint)strtoul(argv[1], NULL, 10) : 4096;
    if (n == 0 || n % 64 != 0) {
        fprintf(stderr, "vm_vecadd: N must be a positive multiple of 64\n");
        return 2;
    }
    cl_int err;
    cl_platform_id platform;
    cl_uint nplat = 0;
    CHECK("clGetPlatformIDs", clGetPlatformIDs(1, &platform, &nplat));
    if (nplat == 0) {
        printf("vecadd FAILED: no platform\n");
        return 1;
    }
    cl_device_id device;
    CHECK("clGetDeviceIDs", clGetDeviceIDs(platform, CL_DEVICE_TYPE_ALL, 1, &device, NULL));
    char name[256] = {0};
    CHECK("clGetDeviceInfo", clGetDeviceInfo(device, CL_DEVICE_NAME, sizeof name - 1, name, NULL));
    printf("device: %s\n", name);

    cl_context ctx = clCreateContext(NULL, 1, &device, NULL, NULL, &err);
    CHECK("clCreateContext", err);
    cl_command_queue q = clCreateCommandQueue(ctx, device, 0, &err);
    CHECK("clCreateCommandQueue", err);

    float *a = malloc(n * sizeof(float));
    float *b = malloc(n * sizeof(float));
    float *c = malloc(n * sizeof(float));
    if (!a || !b || !c) return 2;
    for (cl_uint i = 0; i < n; i++) {
        a[i] = (float)(i % 1000) * 0.5f;
        b[i] = (float)((i * 7) % 13) - 6.0f;
    }

    cl_mem da = clCreateBuffer(ctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, n * sizeof(float), a, &err);
    CHECK("clCreateBuffer(a)", err);
    cl_mem db = clCreateBuffer(ctx, CL_MEM_READ_ONLY, n * sizeof(float), NULL, &err);
    CHECK("clCreateBuffer(b)", err);
    CHECK("clEnqueueWriteBuffer", clEnqueueWriteBuffer(q, db, CL_TRUE, 0, n * sizeof(float), b, 0, NULL, NULL));
    cl_mem dc = clCreateBuffer(ctx, CL_MEM_READ_WRITE, n * sizeof(float), NULL, &err);
    CHECK("clCreateBuffer(c)", err);

    cl_program prog = clCreateProgramWithSource(ctx, 1, &SOURCE, NULL, &err);
    CHECK("clCreateProgramWithSource", err);
    err = clBuildProgram(prog, 1, &device, "", NULL, NULL);
    if (err != CL_SUCCESS) {
        char log[4096] = {0};
        clGetProgramBuildInfo(prog, device, CL_PROGRAM_BUILD_LOG, sizeof log - 1, log, NULL);
        fprintf(stderr, "build log:\n%s\n", log);
    }
    CHECK("clBuildProgram", err);
    cl_kernel muladd = clCreateKernel(prog, "muladd", &err);
    CHECK("clCreateKernel(muladd)", err);
    cl_kernel scale = clCreateKernel(prog, "scale", &err);
    CHECK("clCreateKernel(scale)", err);

    CHECK("clSetKernelArg(0)", clSetKernelArg(muladd, 0, sizeof da, &da));
    CHECK("clSetKernelArg(1)", clSetKernelArg(muladd, 1, sizeof db, &db));
    CHECK("clSetKernelArg(2)", clSetKernelArg(muladd, 2, sizeof dc, &dc));
    CHECK("clSetKernelArg(3)", clSetKernelArg(muladd, 3, sizeof n, &n));
    size_t global = n, local = 64;
    CHECK("clEnqueueNDRangeKernel(muladd)", clEnqueueNDRangeKernel(q, muladd, 1, NULL, &global, &local, 0, NULL, NULL));

    float k = 0.25f;
    CHECK("clSetKernelArg(scale 0)", clSetKernelArg(scale, 0, sizeof dc, &dc));
    CHECK("clSetKernelArg(scale 1)", clSetKernelArg(scale, 1, sizeof k, &k));
    cl_event done;
    CHECK("clEnqueueNDRangeKernel(scale)", clEnqueueNDRangeKernel(q, scale, 1, NULL, &global, NULL, 0, NULL, &done));
    CHECK("clWaitForEvents", clWaitForEvents(1, &done));
    cl_int status = -1;
    CHECK("clGetEventInfo", clGetEventInfo(done, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof status, &status, NULL));
    printf("event status: %d\n", status);
    CHECK("clEnqueueReadBuffer", clEnqueueReadBuffer(q, dc, CL_TRUE, 0, n * sizeof(float), c, 0, NULL, NULL));
    CHECK("clFinish", clFinish(q));

    /* Every value is exact in float (small integers and halves times
     * small integers, scaled by a power of two), so the CPU's result is
     * the same bit for bit. */
    cl_uint bad = 0;
    double sum = 0.0;
    unsigned long long xsum = 0;
    for (cl_uint i = 0; i < n; i++) {
        float want = (a[i] * b[i] + a[i]) * k - (float)(i % 7);
        if (c[i] != want) {
            if (bad < 5) printf("mismatch at %u: got %.6f, want %.6f\n", i, c[i], want);
            bad++;
        }
        sum += c[i];
        unsigned int bits;
        memcpy(&bits, &c[i], sizeof bits);
        xsum = xsum * 31 + bits;
    }
    for (cl_uint i = 0; i < 8; i++) printf("c[%u] = %.4f\n", i, c[i]);
    printf("c[%u] = %.4f\n", n - 1, c[n - 1]);
    printf("n = %u, sum = %.4f, hash = %016llx\n", n, sum, xsum);

    clReleaseEvent(done);
    clReleaseKernel(scale);
    clReleaseKernel(muladd);
    clReleaseProgram(prog);
    clReleaseMemObject(dc);
    clReleaseMemObject(db);
    clReleaseMemObject(da);
    clReleaseCommandQueue(q);
    clReleaseContext(ctx);
    free(a);
    free(b);
    free(c);
    if (bad) {
        printf("vecadd FAILED: %u mismatches\n", bad);
        return 1;
    }
    printf("vecadd OK\n");
    return 0;
}
