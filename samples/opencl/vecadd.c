/*
 * vecadd.c - vector addition of 1M floats with OpenCL.
 *
 * Input A is uploaded at creation (CL_MEM_COPY_HOST_PTR), input B with a
 * non-blocking clEnqueueWriteBuffer, and the result is read back with a
 * blocking clEnqueueReadBuffer. Prints a checksum and a few values, and
 * verifies every element against the host. Uses the first platform and its
 * first device; exits non-zero (printing the error code) on any OpenCL error.
 */
#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 300
#endif
#include <CL/cl.h>
#include <stdio.h>
#include <stdlib.h>

#define N (1024 * 1024)

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
    "__kernel void vecadd(__global const float *a, __global const float *b,\n"
    "                     __global float *c, const unsigned int n) {\n"
    "    size_t i = get_global_id(0);\n"
    "    if (i < n) c[i] = a[i] + b[i];\n"
    "}\n";

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

    float *a = malloc(N * sizeof(float));
    float *b = malloc(N * sizeof(float));
    float *c = malloc(N * sizeof(float));
    if (!a || !b || !c) {
        printf("out of memory\n");
        return 1;
    }
    for (int i = 0; i < N; i++) {
        a[i] = (float)(i % 1000) * 0.5f;
        b[i] = (float)(i / 1000) * 0.25f;
        c[i] = -1.0f;
    }

    size_t bytes = N * sizeof(float);
    cl_mem da = clCreateBuffer(ctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, bytes, a, &err);
    CHECK(err);
    cl_mem db = clCreateBuffer(ctx, CL_MEM_READ_ONLY, bytes, NULL, &err);
    CHECK(err);
    cl_mem dc = clCreateBuffer(ctx, CL_MEM_WRITE_ONLY, bytes, NULL, &err);
    CHECK(err);
    CHECK(clEnqueueWriteBuffer(q, db, CL_FALSE, 0, bytes, b, 0, NULL, NULL));

    cl_program prog = clCreateProgramWithSource(ctx, 1, &source, NULL, &err);
    CHECK(err);
    CHECK(clBuildProgram(prog, 1, &device, NULL, NULL, NULL));
    cl_kernel k = clCreateKernel(prog, "vecadd", &err);
    CHECK(err);
    cl_uint n = N;
    CHECK(clSetKernelArg(k, 0, sizeof(cl_mem), &da));
    CHECK(clSetKernelArg(k, 1, sizeof(cl_mem), &db));
    CHECK(clSetKernelArg(k, 2, sizeof(cl_mem), &dc));
    CHECK(clSetKernelArg(k, 3, sizeof(cl_uint), &n));

    size_t global = N;
    CHECK(clEnqueueNDRangeKernel(q, k, 1, NULL, &global, NULL, 0, NULL, NULL));
    CHECK(clEnqueueReadBuffer(q, dc, CL_TRUE, 0, bytes, c, 0, NULL, NULL));
    CHECK(clFinish(q));

    double sum = 0.0;
    int bad = 0;
    for (int i = 0; i < N; i++) {
        sum += c[i];
        if (c[i] != a[i] + b[i]) bad++;
    }
    printf("vecadd: n=%d\n", N);
    const int show[] = {0, 1, 999, 1000, 123456, N - 1};
    for (size_t j = 0; j < sizeof show / sizeof show[0]; j++)
        printf("c[%d] = %.2f\n", show[j], c[show[j]]);
    printf("checksum: %.2f\n", sum);
    printf("mismatches: %d\n", bad);

    CHECK(clReleaseKernel(k));
    CHECK(clReleaseProgram(prog));
    CHECK(clReleaseMemObject(da));
    CHECK(clReleaseMemObject(db));
    CHECK(clReleaseMemObject(dc));
    CHECK(clReleaseCommandQueue(q));
    CHECK(clReleaseContext(ctx));
    free(a);
    free(b);
    free(c);
    return bad ? 1 : 0;
}
