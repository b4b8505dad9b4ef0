/* Enqueue calls with invalid arguments return their error at once, even
   those that are asynchronous when remoted: work dimensions out of range,
   event wait lists whose pointer and count disagree, and kernels launched
   with an argument not set (a clone keeps its source's arguments). Prints
   each call's result. */
#define CL_TARGET_OPENCL_VERSION 300
#include <CL/cl.h>
#include <stdio.h>

static const char *SRC =
    "__kernel void k(__global int* a) { a[get_global_id(0)] = 1; }\n"
    "__kernel void two(__global int* a, int v) { a[get_global_id(0)] = v; }\n";

int main(void) {
  cl_platform_id pl; cl_device_id d; cl_int err;
  clGetPlatformIDs(1, &pl, NULL);
  clGetDeviceIDs(pl, CL_DEVICE_TYPE_ALL, 1, &d, NULL);
  cl_context ctx = clCreateContext(NULL, 1, &d, NULL, NULL, &err);
  cl_command_queue q = clCreateCommandQueueWithProperties(ctx, d, NULL, &err);
  cl_program p = clCreateProgramWithSource(ctx, 1, &SRC, NULL, &err);
  clBuildProgram(p, 1, &d, NULL, NULL, NULL);
  cl_kernel k = clCreateKernel(p, "k", &err);
  cl_mem b = clCreateBuffer(ctx, CL_MEM_READ_WRITE, 256, NULL, &err);
  clSetKernelArg(k, 0, sizeof b, &b);
  size_t g = 64;
  int x[64] = {0};
  cl_event e = NULL;
  printf("ndrange, work_dim 0: %d\n", clEnqueueNDRangeKernel(q, k, 0, NULL, &g, NULL, 0, NULL, NULL));
  printf("ndrange, work_dim 4: %d\n", clEnqueueNDRangeKernel(q, k, 4, NULL, &g, NULL, 0, NULL, NULL));
  printf("write, wait list NULL with 1: %d\n", clEnqueueWriteBuffer(q, b, CL_FALSE, 0, 64, x, 1, NULL, NULL));
  printf("write, wait list with 0: %d\n", clEnqueueWriteBuffer(q, b, CL_FALSE, 0, 64, x, 0, &e, NULL));
  printf("read, wait list NULL with 1: %d\n", clEnqueueReadBuffer(q, b, CL_TRUE, 0, 64, x, 1, NULL, NULL));
  printf("copy, wait list NULL with 2: %d\n", clEnqueueCopyBuffer(q, b, b, 0, 128, 64, 2, NULL, NULL));
  printf("marker, wait list NULL with 1: %d\n", clEnqueueMarkerWithWaitList(q, 1, NULL, NULL));
  printf("barrier, wait list with 0: %d\n", clEnqueueBarrierWithWaitList(q, 0, &e, NULL));
  cl_kernel t = clCreateKernel(p, "two", &err);
  printf("ndrange, no argument set: %d\n", clEnqueueNDRangeKernel(q, t, 1, NULL, &g, NULL, 0, NULL, NULL));
  clSetKernelArg(t, 0, sizeof b, &b);
  printf("ndrange, one of two set: %d\n", clEnqueueNDRangeKernel(q, t, 1, NULL, &g, NULL, 0, NULL, NULL));
  printf("set an argument out of range: %d\n", clSetKernelArg(t, 5, sizeof b, &b));
  int v = 7;
  clSetKernelArg(t, 1, sizeof v, &v);
  printf("ndrange, both set: %d\n", clEnqueueNDRangeKernel(q, t, 1, NULL, &g, NULL, 0, NULL, NULL));
  cl_kernel c = clCloneKernel(t, &err);
  printf("ndrange of a clone: %d\n", clEnqueueNDRangeKernel(q, c, 1, NULL, &g, NULL, 0, NULL, NULL));
  clReleaseKernel(c);
  clReleaseKernel(t);
  printf("valid ndrange: %d\n", clEnqueueNDRangeKernel(q, k, 1, NULL, &g, NULL, 0, NULL, NULL));
  printf("finish: %d\n", clFinish(q));
  return 0;
}
