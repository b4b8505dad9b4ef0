/*
 * binaries.c - a program's binary read back and used to create a program.
 *
 * The pattern of kernel caches: build from source, read the binary with
 * clGetProgramInfo(CL_PROGRAM_BINARY_SIZES, then CL_PROGRAM_BINARIES), create
 * a second program from it with clCreateProgramWithBinary, build that and
 * run its kernel. The binary's bytes are not printed (they are the
 * compiler's), only that it is non-empty. Uses the first platform and its
 * first device; exits 1 (printing the error code) on any OpenCL error, and
 * 2 if reading the binary back fails (after printing the code it returned).
 */
#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 300
#endif
#include <CL/cl.h>
#include <stdio.h>
#include <stdlib.h>

#define N 1000

#define CHECK(call)                                                        \
    do {                                                                   \
        cl_int err_ = (call);                                              \
        if (err_ != CL_SUCCESS) {                                          \
            printf("OpenCL error %d at %s:%d: %s\n", err_, __FILE__,       \
                   __LINE__, #call);                                       \
            exit(1);                                                       \
        }                                                                  \
    } while (0)

static const char *source =
    "__kernel void triple(__global int *v) { v[get_global_id(0)] *= 3; }\n";

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

    cl_program from_source = clCreateProgramWithSource(ctx, 1, &source, NULL, &err);
    CHECK(err);
    CHECK(clBuildProgram(from_source, 1, &device, NULL, NULL, NULL));
    size_t size = 0;
    CHECK(clGetProgramInfo(from_source, CL_PROGRAM_BINARY_SIZES, sizeof size, &size, NULL));
    printf("binary size non-zero: %s\n", size > 0 ? "yes" : "no");
    unsigned char *binary = malloc(size);
    if (!binary) return 1;
    unsigned char *binaries[1] = {binary};
    err = clGetProgramInfo(from_source, CL_PROGRAM_BINARIES, sizeof binaries, binaries, NULL);
    printf("clGetProgramInfo(CL_PROGRAM_BINARIES): %d\n", err);
    if (err != CL_SUCCESS) return 2;
    printf("binary pointer kept: %s\n", binaries[0] == binary ? "yes" : "no");

    const unsigned char *bins[1] = {binary};
    cl_int status;
    cl_program from_binary = clCreateProgramWithBinary(ctx, 1, &device, &size, bins, &status, &err);
    CHECK(err);
    printf("clCreateProgramWithBinary binary status: %d\n", status);
    CHECK(clBuildProgram(from_binary, 1, &device, NULL, NULL, NULL));
    cl_kernel k = clCreateKernel(from_binary, "triple", &err);
    CHECK(err);

    static cl_int v[N];
    for (int i = 0; i < N; i++) v[i] = i;
    cl_mem buf = clCreateBuffer(ctx, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, sizeof v, v, &err);
    CHECK(err);
    CHECK(clSetKernelArg(k, 0, sizeof buf, &buf));
    size_t global = N;
    CHECK(clEnqueueNDRangeKernel(q, k, 1, NULL, &global, NULL, 0, NULL, NULL));
    CHECK(clEnqueueReadBuffer(q, buf, CL_TRUE, 0, sizeof v, v, 0, NULL, NULL));
    long sum = 0;
    int bad = 0;
    for (int i = 0; i < N; i++) {
        sum += v[i];
        if (v[i] != 3 * i) bad++;
    }
    printf("kernel from the binary: sum %ld, mismatches %d\n", sum, bad);

    CHECK(clReleaseMemObject(buf));
    CHECK(clReleaseKernel(k));
    CHECK(clReleaseProgram(from_binary));
    CHECK(clReleaseProgram(from_source));
    CHECK(clReleaseCommandQueue(q));
    CHECK(clReleaseContext(ctx));
    free(binary);
    return bad ? 1 : 0;
}
