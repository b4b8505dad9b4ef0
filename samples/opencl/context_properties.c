/* CL_CONTEXT_PROPERTIES returns the properties the context was created
   with, holding the program's own platform id; a context created without
   properties returns none. */
#define CL_TARGET_OPENCL_VERSION 300
#include <CL/cl.h>
#include <stdio.h>

int main(void) {
  cl_platform_id pl; cl_device_id d; cl_int err;
  clGetPlatformIDs(1, &pl, NULL);
  clGetDeviceIDs(pl, CL_DEVICE_TYPE_ALL, 1, &d, NULL);
  cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)pl, 0};
  cl_context c = clCreateContext(props, 1, &d, NULL, NULL, &err);
  size_t size = 0;
  clGetContextInfo(c, CL_CONTEXT_PROPERTIES, 0, NULL, &size);
  printf("properties size: %zu\n", size);
  cl_context_properties back[8] = {0};
  err = clGetContextInfo(c, CL_CONTEXT_PROPERTIES, sizeof back, back, NULL);
  printf("query: %d, platform key: %s, platform is the program's: %s, terminated: %s\n", err,
         back[0] == CL_CONTEXT_PLATFORM ? "yes" : "no",
         back[1] == (cl_context_properties)pl ? "yes" : "no", back[2] == 0 ? "yes" : "no");
  err = clGetContextInfo(c, CL_CONTEXT_PROPERTIES, 8, back, NULL);
  printf("into 8 bytes: %d\n", err);
  cl_context t = clCreateContextFromType(NULL, CL_DEVICE_TYPE_ALL, NULL, NULL, &err);
  size = 99;
  clGetContextInfo(t, CL_CONTEXT_PROPERTIES, 0, NULL, &size);
  printf("no properties: size %zu\n", size);
  clReleaseContext(t);
  clReleaseContext(c);
  return 0;
}
