/* An idle guest and its first call after idleness: holds a context and a
 * queue, then ROUNDS times sleeps IDLE_MS and makes one small call
 * (clGetDeviceInfo), timing it. Prints the median and the worst of those
 * first calls. When AVA_MARK_FILE names a file (the VM tests give the
 * serial console), "AVA-IDLE begin" is written there before the first
 * sleep and "AVA-IDLE end" after the last call, so that an observer can
 * measure what the worker spends while this guest is idle.
 * Usage: idle_wake [ROUNDS] [IDLE_MS] */
#define _POSIX_C_SOURCE 200809L
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

static void mark(const char *what) {
    const char *path = getenv("AVA_MARK_FILE");
    if (!path) return;
    FILE *f = fopen(path, "w");
    if (!f) return;
    fprintf(f, "\nAVA-IDLE %s\n", what);
    fclose(f);
}

#define CHECK(what, err)                                  \
    do {                                                  \
        if ((err) != CL_SUCCESS) {                        \
            printf("%s failed: %d\n", what, (int)(err));  \
            return 1;                                     \
        }                                                 \
    } while (0)

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 5;
    int idle_ms = argc > 2 ? atoi(argv[2]) : 1000;
    if (rounds < 1 || idle_ms < 0) {
        printf("usage: idle_wake [ROUNDS >= 1] [IDLE_MS >= 0]\n");
        return 2;
    }
    cl_platform_id p;
    cl_device_id d;
    cl_int e;
    CHECK("clGetPlatformIDs", clGetPlatformIDs(1, &p, NULL));
    CHECK("clGetDeviceIDs", clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, 1, &d, NULL));
    cl_context c = clCreateContext(NULL, 1, &d, NULL, NULL, &e);
    CHECK("clCreateContext", e);
    cl_command_queue q = clCreateCommandQueueWithProperties(c, d, NULL, &e);
    CHECK("clCreateCommandQueueWithProperties", e);
    double *lat = malloc(sizeof(double) * rounds);
    struct timespec idle = {idle_ms / 1000, (long)(idle_ms % 1000) * 1000000L};
    mark("begin");
    for (int i = 0; i < rounds; i++) {
        nanosleep(&idle, NULL);
        cl_uint units = 0;
        double t = now_us();
        CHECK("clGetDeviceInfo",
              clGetDeviceInfo(d, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof units, &units, NULL));
        lat[i] = now_us() - t;
        if (units == 0) {
            printf("clGetDeviceInfo returned 0 compute units\n");
            return 1;
        }
    }
    mark("end");
    qsort(lat, rounds, sizeof(double), cmp);
    printf("first call after %d ms idle: median %.1f us, worst %.1f us (%d rounds)\n", idle_ms,
           lat[rounds / 2], lat[rounds - 1], rounds);
    clReleaseCommandQueue(q);
    clReleaseContext(c);
    free(lat);
    return 0;
}
