/*
 * errors.c - OpenCL calls with bad input, and the error codes they return.
 *
 * Each case is one the OpenCL specification gives a definite error for; the
 * returned code is printed next to the expected one. Releasing an object
 * twice is not among them: its result is undefined. The exit status is the
 * number of cases that returned something else than expected (0 when all
 * matched), or 100 if the setup itself fails. Uses the first platform and
 * its first device.
 */
#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 300
#endif
#include <CL/cl.h>
#include <stdio.h>
#include <stdlib.h>

#define SETUP(call)                                                        \
    do {                                                                   \
        cl_int err_ = (call);                                              \
        if (err_ != CL_SUCCESS) {                                          \
            printf("OpenCL error %d in setup at %s:%d: %s\n", err_,        \
                   __FILE__, __LINE__, #call);                             \
            exit(100);                                                     \
        }                                                                  \
    } while (0)

static int mismatches = 0;

static void report(const char *what, cl_int got, cl_int want, const char *want_name) {
    printf("%-52s %4d (expected %d %s)%s\n", what, got, want, want_name,
           got == want ? "" : "  MISMATCH");
    if (got != want) mismatches++;
}
#define EXPECT(what, got, want) report(what, got, want, #want)

static const char *source =
    "__kernel void copy(__global const int *a, __global int *b) {\n"
    "    b[get_global_id(0)] = a[get_global_id(0)];\n"
    "}\n";

int main(void) {
    cl_int err;
    cl_platform_id platform;
    cl_device_id device;
    SETUP(clGetPlatformIDs(1, &platform, NULL));
    SETUP(clGetDeviceIDs(platform, CL_DEVICE_TYPE_ALL, 1, &device, NULL));
    cl_context ctx = clCreateContext(NULL, 1, &device, NULL, NULL, &err);
    SETUP(err);
    cl_command_queue q = clCreateCommandQueueWithProperties(ctx, device, NULL, &err);
    SETUP(err);
    cl_program prog = clCreateProgramWithSource(ctx, 1, &source, NULL, &err);
    SETUP(err);
    SETUP(clBuildProgram(prog, 1, &device, NULL, NULL, NULL));
    cl_kernel k = clCreateKernel(prog, "copy", &err);
    SETUP(err);
    cl_mem buf = clCreateBuffer(ctx, CL_MEM_READ_WRITE, 1024, NULL, &err);
    SETUP(err);

    /* Queries. */
    char small[2];
    err = clGetPlatformInfo(platform, CL_PLATFORM_NAME, sizeof small, small, NULL);
    EXPECT("clGetPlatformInfo(NAME, 2-byte buffer)", err, CL_INVALID_VALUE);
    cl_uint dummy;
    err = clGetDeviceInfo(device, (cl_device_info)0x7FFF, sizeof dummy, &dummy, NULL);
    EXPECT("clGetDeviceInfo(invalid param_name)", err, CL_INVALID_VALUE);
    err = clGetPlatformIDs(0, NULL, NULL);
    EXPECT("clGetPlatformIDs(0, NULL, NULL)", err, CL_INVALID_VALUE);

    /* Objects. */
    cl_mem m = clCreateBuffer(ctx, CL_MEM_READ_WRITE, 0, NULL, &err);
    EXPECT("clCreateBuffer(size 0)", err, CL_INVALID_BUFFER_SIZE);
    printf("%-52s %s\n", "  returned object", m ? "non-NULL" : "NULL");
    m = clCreateBuffer(ctx, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, 16, NULL, &err);
    EXPECT("clCreateBuffer(COPY_HOST_PTR, host_ptr NULL)", err, CL_INVALID_HOST_PTR);
    cl_kernel k2 = clCreateKernel(prog, "no_such_kernel", &err);
    EXPECT("clCreateKernel(wrong name)", err, CL_INVALID_KERNEL_NAME);
    printf("%-52s %s\n", "  returned object", k2 ? "non-NULL" : "NULL");
    err = clSetKernelArg(k, 7, sizeof buf, &buf);
    EXPECT("clSetKernelArg(arg index 7 of 2)", err, CL_INVALID_ARG_INDEX);

    /* Commands. */
    char host[2048];
    err = clEnqueueReadBuffer(q, buf, CL_TRUE, 512, 1024, host, 0, NULL, NULL);
    EXPECT("clEnqueueReadBuffer(offset 512 + 1024 > 1024)", err, CL_INVALID_VALUE);
    err = clEnqueueReadBuffer(q, buf, CL_TRUE, 0, 2048, host, 0, NULL, NULL);
    EXPECT("clEnqueueReadBuffer(2048 bytes of 1024)", err, CL_INVALID_VALUE);
    err = clWaitForEvents(0, NULL);
    EXPECT("clWaitForEvents(0, NULL)", err, CL_INVALID_VALUE);
    err = clFinish(q);
    EXPECT("clFinish (nothing failed pending)", err, CL_SUCCESS);

    SETUP(clReleaseMemObject(buf));
    SETUP(clReleaseKernel(k));
    SETUP(clReleaseProgram(prog));
    SETUP(clReleaseCommandQueue(q));
    SETUP(clReleaseContext(ctx));
    printf("mismatches: %d\n", mismatches);
    return mismatches;
}
