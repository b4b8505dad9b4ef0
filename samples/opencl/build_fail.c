/*
 * build_fail.c - a program build that fails, its build log and status, and a
 * successful build with a pfn_notify callback.
 *
 * clBuildProgram of a source with a syntax error must fail with
 * CL_BUILD_PROGRAM_FAILURE; the build log (queried for its size, then
 * filled) must be non-empty and mention "error", and the build status is
 * CL_BUILD_ERROR. Only facts about the log are printed, not the log itself
 * (its text is the compiler's). Then a correct program is built with a
 * notify callback, which may run before clBuildProgram returns or later.
 * Uses the first platform and its first device; exits non-zero (printing the
 * error code) on any unexpected OpenCL error.
 */
#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 300
#endif
#include <CL/cl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHECK(call)                                                        \
    do {                                                                   \
        cl_int err_ = (call);                                              \
        if (err_ != CL_SUCCESS) {                                          \
            printf("OpenCL error %d at %s:%d: %s\n", err_, __FILE__,       \
                   __LINE__, #call);                                       \
            exit(1);                                                       \
        }                                                                  \
    } while (0)

static const char *bad_source =
    "__kernel void broken(__global float *x) {\n"
    "    x[get_global_id(0)] = 1.0f +;\n" /* syntax error */
    "}\n";

static const char *good_source =
    "__kernel void fine(__global float *x) {\n"
    "    x[get_global_id(0)] *= 2.0f;\n"
    "}\n";

struct notify_record {
    cl_program expected;
    volatile int calls;
    volatile int same_program;
};

static void CL_CALLBACK on_built(cl_program program, void *user_data) {
    struct notify_record *r = user_data;
    r->same_program = (program == r->expected);
    r->calls = r->calls + 1;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int main(void) {
    cl_int err;
    cl_platform_id platform;
    cl_device_id device;
    CHECK(clGetPlatformIDs(1, &platform, NULL));
    CHECK(clGetDeviceIDs(platform, CL_DEVICE_TYPE_ALL, 1, &device, NULL));
    cl_context ctx = clCreateContext(NULL, 1, &device, NULL, NULL, &err);
    CHECK(err);

    /* 1. The failing build. */
    cl_program bad = clCreateProgramWithSource(ctx, 1, &bad_source, NULL, &err);
    CHECK(err);
    err = clBuildProgram(bad, 1, &device, NULL, NULL, NULL);
    printf("clBuildProgram(bad source): %d (%s)\n", err,
           err == CL_BUILD_PROGRAM_FAILURE ? "CL_BUILD_PROGRAM_FAILURE" : "unexpected");
    if (err != CL_BUILD_PROGRAM_FAILURE) return 1;

    size_t log_size = 0;
    CHECK(clGetProgramBuildInfo(bad, device, CL_PROGRAM_BUILD_LOG, 0, NULL, &log_size));
    char *log = malloc(log_size + 1);
    if (!log) return 1;
    CHECK(clGetProgramBuildInfo(bad, device, CL_PROGRAM_BUILD_LOG, log_size, log, NULL));
    log[log_size] = '\0';
    printf("log non-empty: %s\n", strlen(log) > 0 ? "yes" : "no");
    printf("log mentions error: %s\n", strstr(log, "error") ? "yes" : "no");
    free(log);

    cl_build_status status;
    CHECK(clGetProgramBuildInfo(bad, device, CL_PROGRAM_BUILD_STATUS, sizeof status, &status, NULL));
    printf("build status (bad source): %d (%s)\n", status,
           status == CL_BUILD_ERROR ? "CL_BUILD_ERROR" : "unexpected");

    cl_kernel k = clCreateKernel(bad, "broken", &err);
    printf("clCreateKernel on the failed program: %d\n", err);
    if (k) clReleaseKernel(k);
    CHECK(clReleaseProgram(bad));

    /* 2. A good build with a notify callback. */
    cl_program good = clCreateProgramWithSource(ctx, 1, &good_source, NULL, &err);
    CHECK(err);
    struct notify_record rec = {.expected = good, .calls = 0, .same_program = 0};
    CHECK(clBuildProgram(good, 1, &device, "-cl-std=CL1.2", on_built, &rec));
    for (int waited = 0; rec.calls == 0 && waited < 10000; waited++) sleep_ms(1);
    printf("notify ran: %s (%d call%s)\n", rec.calls ? "yes" : "no", rec.calls,
           rec.calls == 1 ? "" : "s");
    printf("notify got the built program: %s\n", rec.same_program ? "yes" : "no");
    CHECK(clGetProgramBuildInfo(good, device, CL_PROGRAM_BUILD_STATUS, sizeof status, &status, NULL));
    printf("build status (good source): %d (%s)\n", status,
           status == CL_BUILD_SUCCESS ? "CL_BUILD_SUCCESS" : "unexpected");
    cl_kernel fine = clCreateKernel(good, "fine", &err);
    CHECK(err);
    printf("kernel from the good program: created\n");

    CHECK(clReleaseKernel(fine));
    CHECK(clReleaseProgram(good));
    CHECK(clReleaseContext(ctx));
    return rec.calls == 1 && status == CL_BUILD_SUCCESS ? 0 : 1;
}
