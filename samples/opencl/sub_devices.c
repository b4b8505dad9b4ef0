/* Device partitioning: sub-devices made equally and by counts, their
   parent and compute units, and a kernel run on a sub-device. Prints what
   it finds (the same natively and remoted). */
#define CL_TARGET_OPENCL_VERSION 300
#include <CL/cl.h>
#include <stdio.h>

static const char *SRC = "__kernel void one(__global int* a) { a[get_global_id(0)] = 1; }";

int main(void) {
  cl_platform_id pl; cl_device_id root; cl_int err;
  clGetPlatformIDs(1, &pl, NULL);
  clGetDeviceIDs(pl, CL_DEVICE_TYPE_ALL, 1, &root, NULL);
  cl_uint cus = 0;
  clGetDeviceInfo(root, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof cus, &cus, NULL);
  printf("root compute units: %u\n", cus);

  cl_device_partition_property equally[] = {CL_DEVICE_PARTITION_EQUALLY, 1, 0};
  cl_uint n = 0;
  err = clCreateSubDevices(root, equally, 0, NULL, &n);
  printf("equally, count only: %d, %u sub-devices\n", err, n);
  cl_device_id subs[16] = {0};
  err = clCreateSubDevices(root, equally, n, subs, NULL);
  printf("equally: %d\n", err);
  for (cl_uint i = 0; i < n && err == CL_SUCCESS; i++) {
    cl_device_id parent = NULL;
    cl_uint units = 0;
    clGetDeviceInfo(subs[i], CL_DEVICE_PARENT_DEVICE, sizeof parent, &parent, NULL);
    clGetDeviceInfo(subs[i], CL_DEVICE_MAX_COMPUTE_UNITS, sizeof units, &units, NULL);
    printf("sub-device %u: parent is the root: %s, compute units: %u\n", i,
           parent == root ? "yes" : "no", units);
  }

  cl_device_partition_property counts[] = {CL_DEVICE_PARTITION_BY_COUNTS, 1, 1,
                                           CL_DEVICE_PARTITION_BY_COUNTS_LIST_END, 0};
  cl_device_id two[2] = {0};
  cl_uint m = 0;
  err = clCreateSubDevices(root, counts, 2, two, &m);
  printf("by counts 1,1: %d, %u sub-devices\n", err, m);

  if (n > 0 && subs[0]) {
    cl_context ctx = clCreateContext(NULL, 1, &subs[0], NULL, NULL, &err);
    cl_command_queue q = clCreateCommandQueueWithProperties(ctx, subs[0], NULL, &err);
    cl_program p = clCreateProgramWithSource(ctx, 1, &SRC, NULL, &err);
    err = clBuildProgram(p, 1, &subs[0], NULL, NULL, NULL);
    cl_kernel k = clCreateKernel(p, "one", &err);
    int host[64] = {0};
    cl_mem b = clCreateBuffer(ctx, CL_MEM_READ_WRITE, sizeof host, NULL, &err);
    clSetKernelArg(k, 0, sizeof b, &b);
    size_t global = 64;
    clEnqueueNDRangeKernel(q, k, 1, NULL, &global, NULL, 0, NULL, NULL);
    clEnqueueReadBuffer(q, b, CL_TRUE, 0, sizeof host, host, 0, NULL, NULL);
    int sum = 0;
    for (int i = 0; i < 64; i++) sum += host[i];
    printf("kernel on a sub-device: sum %d\n", sum);
    clReleaseMemObject(b); clReleaseKernel(k); clReleaseProgram(p);
    clReleaseCommandQueue(q); clReleaseContext(ctx);
  }
  for (cl_uint i = 0; i < n; i++) if (subs[i]) printf("release sub-device %u: %d\n", i, clReleaseDevice(subs[i]));
  for (cl_uint i = 0; i < m; i++) if (two[i]) clReleaseDevice(two[i]);
  cl_device_partition_property bad[] = {0x4242, 1, 0};
  err = clCreateSubDevices(root, bad, 0, NULL, &n);
  printf("unknown partition type: %d\n", err);
  return 0;
}
