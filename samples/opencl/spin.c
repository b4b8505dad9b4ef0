/* A VM's load for scheduler tests: for SECONDS, launch a kernel that runs
 * about ITERS iterations of arithmetic per work item, as fast as possible
 * (mode `saturate`: two launches, then clFinish, again and again), or one
 * at a time measuring each launch-and-wait (mode `latency`). Prints the
 * number of kernels and the median launch-and-wait in microseconds.
 * Usage: spin SECONDS ITERS [saturate|latency] */
#define CL_TARGET_OPENCL_VERSION 300
#include <CL/cl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec * 1e-3;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

#define CHECK(what, err)                                  \
    do {                                                  \
        if ((err) != CL_SUCCESS) {                        \
            printf("%s failed: %d\n", what, (int)(err));  \
            return 1;                                     \
        }                                                 \
    } while (0)

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: spin SECONDS ITERS [saturate|latency]\n");
        return 2;
    }
    double seconds = atof(argv[1]);
    int iters = atoi(argv[2]);
    int latency = argc > 3 && strcmp(argv[3], "latency") == 0;
    cl_platform_id p;
    cl_device_id d;
    cl_int e;
    CHECK("clGetPlatformIDs", clGetPlatformIDs(1, &p, NULL));
    CHECK("clGetDeviceIDs", clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, 1, &d, NULL));
    cl_context c = clCreateContext(NULL, 1, &d, NULL, NULL, &e);
    CHECK("clCreateContext", e);
    cl_command_queue q = clCreateCommandQueueWithProperties(c, d, NULL, &e);
    CHECK("clCreateCommandQueueWithProperties", e);
    const char *s =
        "__kernel void k(__global float* a, int n) {\n"
        "  int i = get_global_id(0); float x = a[i];\n"
        "  for (int j = 0; j < n; j++) x = x * 0.999999f + 0.5f;\n"
        "  a[i] = x;\n"
        "}\n";
    cl_program pr = clCreateProgramWithSource(c, 1, &s, NULL, &e);
    CHECK("clCreateProgramWithSource", e);
    CHECK("clBuildProgram", clBuildProgram(pr, 1, &d, NULL, NULL, NULL));
    cl_kernel k = clCreateKernel(pr, "k", &e);
    CHECK("clCreateKernel", e);
    size_t g = 64;
    cl_mem b = clCreateBuffer(c, CL_MEM_READ_WRITE, g * sizeof(float), NULL, &e);
    CHECK("clCreateBuffer", e);
    float zero[64] = {0};
    CHECK("clEnqueueWriteBuffer", clEnqueueWriteBuffer(q, b, CL_TRUE, 0, sizeof zero, zero, 0, NULL, NULL));
    CHECK("clSetKernelArg", clSetKernelArg(k, 0, sizeof b, &b));
    CHECK("clSetKernelArg", clSetKernelArg(k, 1, sizeof iters, &iters));
    int cap = 1 << 20, n = 0;
    double *t = malloc(cap * sizeof(double));
    double start = now_us(), end = start + seconds * 1e6;
    while (now_us() < end && n < cap) {
        double a = now_us();
        int batch = latency ? 1 : 2;
        for (int i = 0; i < batch; i++)
            CHECK("clEnqueueNDRangeKernel", clEnqueueNDRangeKernel(q, k, 1, NULL, &g, NULL, 0, NULL, NULL));
        CHECK("clFinish", clFinish(q));
        t[n / batch] = now_us() - a;
        n += batch;
    }
    int m = latency ? n : n / 2;
    qsort(t, m, sizeof(double), cmp);
    printf("kernels %d\nseconds %.3f\nmedian_us %.1f\n", n, (now_us() - start) / 1e6, m ? t[m / 2] : 0.0);
    clReleaseMemObject(b);
    clReleaseKernel(k);
    clReleaseProgram(pr);
    clReleaseCommandQueue(q);
    clReleaseContext(c);
    return 0;
}
