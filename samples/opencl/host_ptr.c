/* CL_MEM_USE_HOST_PTR: the buffer's host pointer and flags are the
   program's own, and mapping it returns host_ptr + offset with the buffer's
   current contents there (after a kernel changed them). Prints one line per
   check and the number of failures. */
#define CL_TARGET_OPENCL_VERSION 300
#include <CL/cl.h>
#include <stdio.h>
#include <string.h>

#define N 4096
static int failures = 0;
static void check(const char *what, int ok) {
  printf("%-44s %s\n", what, ok ? "ok" : "FAILED");
  if (!ok) failures++;
}

static const char *SRC =
    "__kernel void twice(__global float* a) { a[get_global_id(0)] *= 2.0f; }";

int main(void) {
  cl_platform_id pl; cl_device_id d; cl_int err;
  clGetPlatformIDs(1, &pl, NULL);
  clGetDeviceIDs(pl, CL_DEVICE_TYPE_ALL, 1, &d, NULL);
  cl_context ctx = clCreateContext(NULL, 1, &d, NULL, NULL, &err);
  cl_command_queue q = clCreateCommandQueueWithProperties(ctx, d, NULL, &err);
  static float host[N] __attribute__((aligned(4096)));
  for (int i = 0; i < N; i++) host[i] = (float)i;
  cl_mem b = clCreateBuffer(ctx, CL_MEM_READ_WRITE | CL_MEM_USE_HOST_PTR, sizeof host, host, &err);
  check("create over the program's memory", err == CL_SUCCESS);

  void *hp = NULL;
  err = clGetMemObjectInfo(b, CL_MEM_HOST_PTR, sizeof hp, &hp, NULL);
  check("CL_MEM_HOST_PTR is the program's pointer", err == CL_SUCCESS && hp == (void *)host);
  cl_mem_flags flags = 0;
  size_t ret = 0;
  err = clGetMemObjectInfo(b, CL_MEM_FLAGS, sizeof flags, &flags, &ret);
  check("CL_MEM_FLAGS are the flags given",
        err == CL_SUCCESS && ret == sizeof flags && flags == (CL_MEM_READ_WRITE | CL_MEM_USE_HOST_PTR));
  size_t small = 0;
  err = clGetMemObjectInfo(b, CL_MEM_HOST_PTR, 2, &small, NULL);
  printf("CL_MEM_HOST_PTR into 2 bytes: %d\n", err);

  cl_program p = clCreateProgramWithSource(ctx, 1, &SRC, NULL, &err);
  clBuildProgram(p, 1, &d, NULL, NULL, NULL);
  cl_kernel k = clCreateKernel(p, "twice", &err);
  clSetKernelArg(k, 0, sizeof b, &b);
  size_t global = N;
  clEnqueueNDRangeKernel(q, k, 1, NULL, &global, NULL, 0, NULL, NULL);
  clFinish(q);

  float *m = clEnqueueMapBuffer(q, b, CL_TRUE, CL_MAP_READ, 0, sizeof host, 0, NULL, NULL, &err);
  check("map returns the host pointer", err == CL_SUCCESS && m == host);
  int doubled = 1;
  for (int i = 0; i < N; i++) doubled &= host[i] == 2.0f * i;
  check("the kernel's results are in the program's memory", doubled);
  clEnqueueUnmapMemObject(q, b, m, 0, NULL, NULL);

  m = clEnqueueMapBuffer(q, b, CL_TRUE, CL_MAP_WRITE, 64, 256, 0, NULL, NULL, &err);
  check("map of a range returns host_ptr + offset", err == CL_SUCCESS && (char *)m == (char *)host + 64);
  if (m) for (int i = 0; i < 64; i++) m[i] = -1.0f;
  clEnqueueUnmapMemObject(q, b, m, 0, NULL, NULL);
  float back[N];
  clEnqueueReadBuffer(q, b, CL_TRUE, 0, sizeof back, back, 0, NULL, NULL);
  int written = 1;
  for (int i = 0; i < N; i++) {
    float want = (i >= 16 && i < 80) ? -1.0f : 2.0f * i;
    written &= back[i] == want;
  }
  check("what the program wrote at the mapping is the buffer's", written);

  /* A buffer made without host memory: its flags are those given and its
     host pointer is NULL (remoted, it may live in shared memory). */
  cl_mem plain = clCreateBuffer(ctx, CL_MEM_READ_ONLY, 1 << 20, NULL, &err);
  flags = 0;
  hp = (void *)1;
  clGetMemObjectInfo(plain, CL_MEM_FLAGS, sizeof flags, &flags, NULL);
  clGetMemObjectInfo(plain, CL_MEM_HOST_PTR, sizeof hp, &hp, NULL);
  check("a plain buffer's flags and NULL host pointer", flags == CL_MEM_READ_ONLY && hp == NULL);
  clReleaseMemObject(plain);

  /* clCreateBufferWithProperties without properties is clCreateBuffer:
     CL_MEM_USE_HOST_PTR keeps the program's pointer and flags. */
  static float own[64];
  for (int i = 0; i < 64; i++) own[i] = (float)i;
  cl_mem withp = clCreateBufferWithProperties(ctx, NULL, CL_MEM_READ_WRITE | CL_MEM_USE_HOST_PTR,
                                              sizeof own, own, &err);
  flags = 0;
  hp = NULL;
  clGetMemObjectInfo(withp, CL_MEM_FLAGS, sizeof flags, &flags, NULL);
  clGetMemObjectInfo(withp, CL_MEM_HOST_PTR, sizeof hp, &hp, NULL);
  check("with properties: the program's flags and host pointer",
        err == CL_SUCCESS && flags == (CL_MEM_READ_WRITE | CL_MEM_USE_HOST_PTR) && hp == own);
  float got[64];
  clEnqueueReadBuffer(q, withp, CL_TRUE, 0, sizeof got, got, 0, NULL, NULL);
  check("with properties: the buffer holds the program's data", got[63] == 63.0f);
  clReleaseMemObject(withp);

  clReleaseKernel(k);
  clReleaseProgram(p);
  clReleaseMemObject(b);
  clReleaseCommandQueue(q);
  clReleaseContext(ctx);
  printf("failures: %d\n", failures);
  return failures != 0;
}
