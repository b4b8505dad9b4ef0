/* Kernel launch latency: N times, enqueue a one-work-item kernel and wait
 * for it with clFinish; prints the median and 90th percentile of the whole
 * launch-and-wait, and the mean time spent in each of the two calls.
 * `ava-bench opencl` runs it natively and through the guest library, each
 * in its own process, in alternating rounds. Usage: launch_latency [N] */
#define CL_TARGET_OPENCL_VERSION 300
#include <CL/cl.h>
#include <stdio.h>
#include <stdlib.h>
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
    int n = argc > 1 ? atoi(argv[1]) : 2000;
    cl_platform_id p;
    cl_device_id d;
    cl_int e;
    CHECK("clGetPlatformIDs", clGetPlatformIDs(1, &p, NULL));
    CHECK("clGetDeviceIDs", clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, 1, &d, NULL));
    cl_context c = clCreateContext(NULL, 1, &d, NULL, NULL, &e);
    CHECK("clCreateContext", e);
    cl_command_queue q = clCreateCommandQueueWithProperties(c, d, NULL, &e);
    CHECK("clCreateCommandQueueWithProperties", e);
    const char *s = "__kernel void k(__global int* a) { a[get_global_id(0)] += 1; }";
    cl_program pr = clCreateProgramWithSource(c, 1, &s, NULL, &e);
    CHECK("clCreateProgramWithSource", e);
    CHECK("clBuildProgram", clBuildProgram(pr, 1, &d, NULL, NULL, NULL));
    cl_kernel k = clCreateKernel(pr, "k", &e);
    CHECK("clCreateKernel", e);
    cl_mem b = clCreateBuffer(c, CL_MEM_READ_WRITE, 64, NULL, &e);
    CHECK("clCreateBuffer", e);
    CHECK("clSetKernelArg", clSetKernelArg(k, 0, sizeof b, &b));
    double *t = malloc(n * sizeof(double));
    double enq = 0, fin = 0;
    size_t g = 1;
    for (int i = 0; i < n; i++) {
        double a = now_us();
        CHECK("clEnqueueNDRangeKernel", clEnqueueNDRangeKernel(q, k, 1, NULL, &g, NULL, 0, NULL, NULL));
        double m = now_us();
        CHECK("clFinish", clFinish(q));
        double z = now_us();
        t[i] = z - a;
        enq += m - a;
        fin += z - m;
    }
    qsort(t, n, sizeof(double), cmp);
    printf("p50_us %.2f p90_us %.2f enqueue_mean_us %.2f finish_mean_us %.2f\n", t[n / 2],
           t[n * 9 / 10], enq / n, fin / n);
    return 0;
}
