/*
 * matmul.c - 256x256 float matrix multiply with a local-memory tiled kernel.
 *
 * The two tiles in __local memory are kernel arguments set with
 * clSetKernelArg(..., size, NULL). The tile size is chosen from
 * clGetKernelWorkGroupInfo(CL_KERNEL_WORK_GROUP_SIZE) of a kernel built for
 * the largest tile. Matrix entries are small integers, so every product and
 * sum is exact and the result is compared with a CPU computation exactly.
 * Prints the tile size, a checksum and the corner values. Uses the first
 * platform and its first device; exits non-zero (printing the error code) on
 * any OpenCL error.
 */
#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 300
#endif
#include <CL/cl.h>
#include <stdio.h>
#include <stdlib.h>

#define N 256

#define CHECK(call)                                                        \
    do {                                                                   \
        cl_int err_ = (call);                                              \
        if (err_ != CL_SUCCESS) {                                          \
            printf("OpenCL error %d at %s:%d: %s\n", err_, __FILE__,       \
                   __LINE__, #call);                                       \
            exit(1);                                                       \
        }                                                                  \
    } while (0)

/* C = A * B for square n x n matrices, n a multiple of the tile size. */
static const char *source =
    "__kernel void matmul(__global const float *A, __global const float *B,\n"
    "                     __global float *C, __local float *ta,\n"
    "                     __local float *tb, const int n, const int tile) {\n"
    "    int row = get_global_id(1), col = get_global_id(0);\n"
    "    int lr = get_local_id(1), lc = get_local_id(0);\n"
    "    float acc = 0.0f;\n"
    "    for (int t = 0; t < n / tile; t++) {\n"
    "        ta[lr * tile + lc] = A[row * n + t * tile + lc];\n"
    "        tb[lr * tile + lc] = B[(t * tile + lr) * n + col];\n"
    "        barrier(CLK_LOCAL_MEM_FENCE);\n"
    "        for (int k = 0; k < tile; k++)\n"
    "            acc += ta[lr * tile + k] * tb[k * tile + lc];\n"
    "        barrier(CLK_LOCAL_MEM_FENCE);\n"
    "    }\n"
    "    C[row * n + col] = acc;\n"
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

    static float a[N * N], b[N * N], c[N * N], ref[N * N];
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            a[i * N + j] = (float)((3 * i + 5 * j) % 11 - 4);
            b[i * N + j] = (float)((7 * i + j) % 9 - 3);
        }

    size_t bytes = sizeof a;
    cl_mem da = clCreateBuffer(ctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, bytes, a, &err);
    CHECK(err);
    cl_mem db = clCreateBuffer(ctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, bytes, b, &err);
    CHECK(err);
    cl_mem dc = clCreateBuffer(ctx, CL_MEM_WRITE_ONLY, bytes, NULL, &err);
    CHECK(err);

    cl_program prog = clCreateProgramWithSource(ctx, 1, &source, NULL, &err);
    CHECK(err);
    CHECK(clBuildProgram(prog, 1, &device, NULL, NULL, NULL));
    cl_kernel k = clCreateKernel(prog, "matmul", &err);
    CHECK(err);

    /* The largest tile (16, 8, 4, ...) whose work-group fits the kernel. */
    size_t wg_max = 0;
    CHECK(clGetKernelWorkGroupInfo(k, device, CL_KERNEL_WORK_GROUP_SIZE, sizeof wg_max, &wg_max, NULL));
    cl_int tile = 16;
    while (tile > 1 && (size_t)(tile * tile) > wg_max) tile /= 2;
    printf("matmul: n=%d tile=%d (work-group size fits: %s)\n", N, tile,
           (size_t)(tile * tile) <= wg_max ? "yes" : "no");

    cl_int n = N;
    size_t local_bytes = (size_t)tile * tile * sizeof(float);
    CHECK(clSetKernelArg(k, 0, sizeof(cl_mem), &da));
    CHECK(clSetKernelArg(k, 1, sizeof(cl_mem), &db));
    CHECK(clSetKernelArg(k, 2, sizeof(cl_mem), &dc));
    CHECK(clSetKernelArg(k, 3, local_bytes, NULL));
    CHECK(clSetKernelArg(k, 4, local_bytes, NULL));
    CHECK(clSetKernelArg(k, 5, sizeof n, &n));
    CHECK(clSetKernelArg(k, 6, sizeof tile, &tile));

    size_t global[2] = {N, N}, local[2] = {(size_t)tile, (size_t)tile};
    CHECK(clEnqueueNDRangeKernel(q, k, 2, NULL, global, local, 0, NULL, NULL));
    CHECK(clEnqueueReadBuffer(q, dc, CL_TRUE, 0, bytes, c, 0, NULL, NULL));

    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            float acc = 0.0f;
            for (int kk = 0; kk < N; kk++) acc += a[i * N + kk] * b[kk * N + j];
            ref[i * N + j] = acc;
        }
    double sum = 0.0;
    int bad = 0;
    for (int i = 0; i < N * N; i++) {
        sum += c[i];
        if (c[i] != ref[i]) bad++;
    }
    printf("checksum: %.1f\n", sum);
    printf("C[0][0] = %.1f, C[0][%d] = %.1f, C[%d][0] = %.1f, C[%d][%d] = %.1f\n", c[0], N - 1,
           c[N - 1], N - 1, c[(N - 1) * N], N - 1, N - 1, c[N * N - 1]);
    printf("CPU check: %s (%d mismatches)\n", bad ? "FAILED" : "ok", bad);

    CHECK(clReleaseKernel(k));
    CHECK(clReleaseProgram(prog));
    CHECK(clReleaseMemObject(da));
    CHECK(clReleaseMemObject(db));
    CHECK(clReleaseMemObject(dc));
    CHECK(clReleaseCommandQueue(q));
    CHECK(clReleaseContext(ctx));
    return bad ? 1 : 0;
}
