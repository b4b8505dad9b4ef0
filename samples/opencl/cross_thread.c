/* One thread waits for a user event that another thread completes: the
 * waiting thread is blocked inside clWaitForEvents while the other one
 * calls clSetUserEventStatus. Then both threads run a kernel on their own
 * queue at the same time. Prints the event status seen by the waiter and
 * the kernels' results. */
#define CL_TARGET_OPENCL_VERSION 300
#include <CL/cl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define CHECK(what, err)                                           \
    do {                                                           \
        if ((err) != CL_SUCCESS) {                                 \
            printf("%s failed: %d\n", what, (int)(err));           \
            exit(1);                                               \
        }                                                          \
    } while (0)

static cl_context ctx;
static cl_device_id dev;
static cl_event user_event;
static cl_program prog;

static const char *src =
    "__kernel void fill(__global int* a, int v) { a[get_global_id(0)] = v + (int)get_global_id(0); }";

static long run_kernel(int v) {
    cl_int err;
    cl_command_queue q = clCreateCommandQueueWithProperties(ctx, dev, NULL, &err);
    CHECK("clCreateCommandQueueWithProperties", err);
    cl_kernel k = clCreateKernel(prog, "fill", &err);
    CHECK("clCreateKernel", err);
    cl_mem buf = clCreateBuffer(ctx, CL_MEM_READ_WRITE, 1024 * sizeof(int), NULL, &err);
    CHECK("clCreateBuffer", err);
    CHECK("clSetKernelArg", clSetKernelArg(k, 0, sizeof buf, &buf));
    CHECK("clSetKernelArg", clSetKernelArg(k, 1, sizeof v, &v));
    size_t n = 1024;
    CHECK("clEnqueueNDRangeKernel", clEnqueueNDRangeKernel(q, k, 1, NULL, &n, NULL, 0, NULL, NULL));
    int out[1024];
    CHECK("clEnqueueReadBuffer", clEnqueueReadBuffer(q, buf, CL_TRUE, 0, sizeof out, out, 0, NULL, NULL));
    long sum = 0;
    for (int i = 0; i < 1024; i++) sum += out[i];
    clReleaseMemObject(buf);
    clReleaseKernel(k);
    clReleaseCommandQueue(q);
    return sum;
}

static void *completer(void *arg) {
    (void)arg;
    struct timespec t = {0, 200 * 1000 * 1000};
    nanosleep(&t, NULL);
    CHECK("clSetUserEventStatus", clSetUserEventStatus(user_event, CL_COMPLETE));
    long *sum = malloc(sizeof *sum);
    *sum = run_kernel(1000);
    return sum;
}

int main(void) {
    cl_platform_id platform;
    cl_int err;
    CHECK("clGetPlatformIDs", clGetPlatformIDs(1, &platform, NULL));
    CHECK("clGetDeviceIDs", clGetDeviceIDs(platform, CL_DEVICE_TYPE_ALL, 1, &dev, NULL));
    ctx = clCreateContext(NULL, 1, &dev, NULL, NULL, &err);
    CHECK("clCreateContext", err);
    prog = clCreateProgramWithSource(ctx, 1, &src, NULL, &err);
    CHECK("clCreateProgramWithSource", err);
    CHECK("clBuildProgram", clBuildProgram(prog, 1, &dev, NULL, NULL, NULL));
    user_event = clCreateUserEvent(ctx, &err);
    CHECK("clCreateUserEvent", err);

    pthread_t t;
    pthread_create(&t, NULL, completer, NULL);
    /* Blocks until the other thread completes the event. */
    CHECK("clWaitForEvents", clWaitForEvents(1, &user_event));
    cl_int status;
    CHECK("clGetEventInfo",
          clGetEventInfo(user_event, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof status, &status, NULL));
    printf("waiter saw status %d (CL_COMPLETE = %d)\n", status, CL_COMPLETE);
    long mine = run_kernel(7);
    long *theirs;
    pthread_join(t, (void **)&theirs);
    printf("waiter kernel sum: %ld\n", mine);
    printf("completer kernel sum: %ld\n", *theirs);
    free(theirs);
    clReleaseEvent(user_event);
    clReleaseProgram(prog);
    clReleaseContext(ctx);
    printf("cross_thread OK\n");
    return 0;
}
