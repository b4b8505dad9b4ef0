/* Asks for a device-side queue (CL_QUEUE_ON_DEVICE) on the first device.
   On a device without device-side queues (CL_DEVICE_QUEUE_ON_DEVICE_PROPERTIES
   is 0) the OpenCL specification requires CL_INVALID_QUEUE_PROPERTIES; PoCL
   aborts the process instead ("Device side queue is unimplemented"). */
#define CL_TARGET_OPENCL_VERSION 300
#include <CL/cl.h>
#include <stdio.h>
int main(void) {
  cl_platform_id p; cl_device_id d; cl_int err;
  clGetPlatformIDs(1, &p, NULL);
  clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, 1, &d, NULL);
  cl_command_queue_properties qp = 0;
  clGetDeviceInfo(d, CL_DEVICE_QUEUE_ON_DEVICE_PROPERTIES, sizeof qp, &qp, NULL);
  printf("queue on device properties: %lu\n", (unsigned long)qp);
  cl_context c = clCreateContext(NULL, 1, &d, NULL, NULL, &err);
  cl_queue_properties props[] = {CL_QUEUE_PROPERTIES, CL_QUEUE_ON_DEVICE | CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE, 0};
  fflush(stdout);
  cl_command_queue q = clCreateCommandQueueWithProperties(c, d, props, &err);
  printf("device-side queue created: %s, error %d\n", q ? "yes" : "no", err);
  if (q) clReleaseCommandQueue(q);
  clReleaseContext(c);
  return 0;
}
