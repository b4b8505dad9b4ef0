/*
 * threads.c - four host threads sharing one context, each with its own
 * command queue, buffers and kernel object.
 *
 * The program is built once; every thread creates its own kernel from it
 * (kernel objects are not shared between threads, since clSetKernelArg is
 * not thread-safe on one kernel), runs it over a different number of
 * elements, reads the result back and verifies it. Results are printed in
 * thread order after all threads have joined. Uses the first platform and
 * its first device; exits non-zero (printing the error code) on any OpenCL
 * error.
 */
#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 300
#endif
#include <CL/cl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define THREADS 4

static const char *source =
    "__kernel void affine(__global const int *in, __global int *out,\n"
    "                     const int mul, const int add) {\n"
    "    size_t i = get_global_id(0);\n"
    "    out[i] = in[i] * mul + add;\n"
    "}\n";

static cl_context ctx;
static cl_device_id device;
static cl_program prog;

struct job {
    int index;
    int n;         /* elements */
    cl_int err;    /* first OpenCL error, or CL_SUCCESS */
    const char *failed_call;
    long long sum; /* of the results */
    int mismatches;
};

#define TRY(call)                                                          \
    do {                                                                   \
        cl_int err_ = (call);                                              \
        if (err_ != CL_SUCCESS) {                                          \
            j->err = err_;                                                 \
            j->failed_call = #call;                                        \
            goto out;                                                      \
        }                                                                  \
    } while (0)

static void *worker(void *arg) {
    struct job *j = arg;
    cl_int err = CL_SUCCESS;
    cl_command_queue q = NULL;
    cl_kernel k = NULL;
    cl_mem din = NULL, dout = NULL;
    int *in = malloc(j->n * sizeof(int)), *out = malloc(j->n * sizeof(int));
    if (!in || !out) {
        j->err = CL_OUT_OF_HOST_MEMORY;
        j->failed_call = "malloc";
        goto out;
    }
    for (int i = 0; i < j->n; i++) in[i] = (i * 7 + j->index) % 1000;
    cl_int mul = j->index + 2, add = 100 * (j->index + 1);

    q = clCreateCommandQueueWithProperties(ctx, device, NULL, &err);
    TRY(err);
    k = clCreateKernel(prog, "affine", &err);
    TRY(err);
    size_t bytes = j->n * sizeof(int);
    din = clCreateBuffer(ctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, bytes, in, &err);
    TRY(err);
    dout = clCreateBuffer(ctx, CL_MEM_WRITE_ONLY, bytes, NULL, &err);
    TRY(err);
    TRY(clSetKernelArg(k, 0, sizeof din, &din));
    TRY(clSetKernelArg(k, 1, sizeof dout, &dout));
    TRY(clSetKernelArg(k, 2, sizeof mul, &mul));
    TRY(clSetKernelArg(k, 3, sizeof add, &add));
    /* Several rounds, so the threads' calls interleave. */
    for (int round = 0; round < 5; round++) {
        size_t global = j->n;
        TRY(clEnqueueNDRangeKernel(q, k, 1, NULL, &global, NULL, 0, NULL, NULL));
        TRY(clEnqueueReadBuffer(q, dout, CL_TRUE, 0, bytes, out, 0, NULL, NULL));
    }
    TRY(clFinish(q));
    j->sum = 0;
    for (int i = 0; i < j->n; i++) {
        j->sum += out[i];
        if (out[i] != in[i] * mul + add) j->mismatches++;
    }
out:
    if (din) clReleaseMemObject(din);
    if (dout) clReleaseMemObject(dout);
    if (k) clReleaseKernel(k);
    if (q) clReleaseCommandQueue(q);
    free(in);
    free(out);
    return NULL;
}

int main(void) {
    cl_int err;
    cl_platform_id platform;
    if ((err = clGetPlatformIDs(1, &platform, NULL)) != CL_SUCCESS ||
        (err = clGetDeviceIDs(platform, CL_DEVICE_TYPE_ALL, 1, &device, NULL)) != CL_SUCCESS) {
        printf("OpenCL error %d finding the device\n", err);
        return 1;
    }
    ctx = clCreateContext(NULL, 1, &device, NULL, NULL, &err);
    if (err != CL_SUCCESS) {
        printf("OpenCL error %d: clCreateContext\n", err);
        return 1;
    }
    prog = clCreateProgramWithSource(ctx, 1, &source, NULL, &err);
    if (err == CL_SUCCESS) err = clBuildProgram(prog, 1, &device, NULL, NULL, NULL);
    if (err != CL_SUCCESS) {
        printf("OpenCL error %d building the program\n", err);
        return 1;
    }

    pthread_t tid[THREADS];
    struct job jobs[THREADS];
    for (int t = 0; t < THREADS; t++) {
        jobs[t] = (struct job){.index = t, .n = 1000 * (1 << (2 * t)) + 17 * t};
        if (pthread_create(&tid[t], NULL, worker, &jobs[t]) != 0) {
            printf("pthread_create failed\n");
            return 1;
        }
    }
    for (int t = 0; t < THREADS; t++) pthread_join(tid[t], NULL);

    int failed = 0;
    for (int t = 0; t < THREADS; t++) {
        struct job *j = &jobs[t];
        if (j->err != CL_SUCCESS) {
            printf("thread %d: OpenCL error %d: %s\n", t, j->err, j->failed_call);
            failed = 1;
            continue;
        }
        printf("thread %d: n=%d sum=%lld mismatches=%d %s\n", t, j->n, j->sum, j->mismatches,
               j->mismatches ? "FAILED" : "ok");
        if (j->mismatches) failed = 1;
    }
    clReleaseProgram(prog);
    clReleaseContext(ctx);
    return failed;
}
