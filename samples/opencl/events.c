/*
 * events.c - a user event gating a kernel, an event callback and profiling.
 *
 * The kernel waits on a user event, so it stays pending until the host sets
 * the user event to CL_COMPLETE. A callback registered with
 * clSetEventCallback(CL_COMPLETE) on the kernel's event records the status
 * it is called with, through its user_data pointer. The queue has profiling
 * enabled; only the order of the timestamps is printed (queued <= submit <=
 * start <= end), never their values. Uses the first platform and its first
 * device; exits non-zero (printing the error code) on any OpenCL error.
 */
#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 300
#endif
#include <CL/cl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define N 4096

#define CHECK(call)                                                        \
    do {                                                                   \
        cl_int err_ = (call);                                              \
        if (err_ != CL_SUCCESS) {                                          \
            printf("OpenCL error %d at %s:%d: %s\n", err_, __FILE__,       \
                   __LINE__, #call);                                       \
            exit(1);                                                       \
        }                                                                  \
    } while (0)

/* What the callback records; reached through its user_data pointer. */
struct callback_record {
    int tag;               /* set by main, read by the callback */
    volatile int calls;    /* incremented by the callback */
    volatile cl_int status;
    volatile int value;    /* derived from tag by the callback */
};

static void CL_CALLBACK on_complete(cl_event ev, cl_int status, void *user_data) {
    (void)ev;
    struct callback_record *r = user_data;
    r->status = status;
    r->value = r->tag * 2 + 1;
    r->calls = r->calls + 1;
}

static const char *source =
    "__kernel void square(__global int *v) {\n"
    "    size_t i = get_global_id(0);\n"
    "    v[i] = v[i] * v[i];\n"
    "}\n";

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
    cl_queue_properties props[] = {CL_QUEUE_PROPERTIES, CL_QUEUE_PROFILING_ENABLE, 0};
    cl_command_queue q = clCreateCommandQueueWithProperties(ctx, device, props, &err);
    CHECK(err);

    static cl_int data[N];
    for (int i = 0; i < N; i++) data[i] = i % 100;
    cl_mem buf = clCreateBuffer(ctx, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, sizeof data, data, &err);
    CHECK(err);
    cl_program prog = clCreateProgramWithSource(ctx, 1, &source, NULL, &err);
    CHECK(err);
    CHECK(clBuildProgram(prog, 1, &device, NULL, NULL, NULL));
    cl_kernel k = clCreateKernel(prog, "square", &err);
    CHECK(err);
    CHECK(clSetKernelArg(k, 0, sizeof buf, &buf));

    cl_event gate = clCreateUserEvent(ctx, &err);
    CHECK(err);
    cl_event kev;
    size_t global = N;
    CHECK(clEnqueueNDRangeKernel(q, k, 1, NULL, &global, NULL, 1, &gate, &kev));
    CHECK(clFlush(q));

    struct callback_record rec = {.tag = 20, .calls = 0, .status = 1, .value = 0};
    CHECK(clSetEventCallback(kev, CL_COMPLETE, on_complete, &rec));

    cl_int st;
    CHECK(clGetEventInfo(kev, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof st, &st, NULL));
    printf("kernel pending before the user event: %s\n", st > CL_COMPLETE ? "yes" : "no");
    cl_command_type type;
    CHECK(clGetEventInfo(gate, CL_EVENT_COMMAND_TYPE, sizeof type, &type, NULL));
    printf("gate is a user event: %s\n", type == CL_COMMAND_USER ? "yes" : "no");
    CHECK(clGetEventInfo(kev, CL_EVENT_COMMAND_TYPE, sizeof type, &type, NULL));
    printf("kernel event is an NDRange command: %s\n", type == CL_COMMAND_NDRANGE_KERNEL ? "yes" : "no");

    CHECK(clSetUserEventStatus(gate, CL_COMPLETE));
    CHECK(clWaitForEvents(1, &kev));
    CHECK(clGetEventInfo(kev, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof st, &st, NULL));
    printf("kernel status after wait: %d\n", st);

    cl_ulong t[4];
    const cl_profiling_info what[4] = {CL_PROFILING_COMMAND_QUEUED, CL_PROFILING_COMMAND_SUBMIT,
                                       CL_PROFILING_COMMAND_START, CL_PROFILING_COMMAND_END};
    for (int i = 0; i < 4; i++)
        CHECK(clGetEventProfilingInfo(kev, what[i], sizeof t[i], &t[i], NULL));
    printf("profiling timestamps ordered (queued <= submit <= start <= end): %s\n",
           (t[0] <= t[1] && t[1] <= t[2] && t[2] <= t[3]) ? "yes" : "no");

    /* The callback may run on another thread after clWaitForEvents returns. */
    for (int waited = 0; rec.calls == 0 && waited < 10000; waited++) sleep_ms(1);
    printf("callback calls: %d\n", rec.calls);
    printf("callback status: %d\n", rec.status);
    printf("callback value from user_data: %d\n", rec.value);

    CHECK(clEnqueueReadBuffer(q, buf, CL_TRUE, 0, sizeof data, data, 0, NULL, NULL));
    long sum = 0;
    int bad = 0;
    for (int i = 0; i < N; i++) {
        sum += data[i];
        if (data[i] != (i % 100) * (i % 100)) bad++;
    }
    printf("result sum: %ld, mismatches: %d\n", sum, bad);

    CHECK(clReleaseEvent(kev));
    CHECK(clReleaseEvent(gate));
    CHECK(clReleaseKernel(k));
    CHECK(clReleaseProgram(prog));
    CHECK(clReleaseMemObject(buf));
    CHECK(clReleaseCommandQueue(q));
    CHECK(clReleaseContext(ctx));
    return (bad || rec.calls != 1) ? 1 : 0;
}
