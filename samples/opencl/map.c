/* Mapping buffers: reads, writes, write-invalidate, offsets, events, two
   mappings of one buffer at once, and the errors of bad ranges and bad
   pointers. Prints one line per check and the number of failures. */
#define CL_TARGET_OPENCL_VERSION 300
#include <CL/cl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;
static void check(const char *what, int ok) {
  printf("%-48s %s\n", what, ok ? "ok" : "FAILED");
  if (!ok) failures++;
}

static int test_buffer(cl_context ctx, cl_command_queue q, size_t n, const char *tag) {
  cl_int err;
  char what[96];
  unsigned char *data = malloc(n), *back = malloc(n);
  for (size_t i = 0; i < n; i++) data[i] = (unsigned char)(i * 7 + 3);
  cl_mem b = clCreateBuffer(ctx, CL_MEM_READ_WRITE, n, NULL, &err);
  snprintf(what, sizeof what, "%s: create", tag);
  check(what, err == CL_SUCCESS);
  clEnqueueWriteBuffer(q, b, CL_TRUE, 0, n, data, 0, NULL, NULL);

  /* Map for reading: the buffer's bytes. */
  unsigned char *p = clEnqueueMapBuffer(q, b, CL_TRUE, CL_MAP_READ, 0, n, 0, NULL, NULL, &err);
  snprintf(what, sizeof what, "%s: map for reading", tag);
  check(what, err == CL_SUCCESS && p && memcmp(p, data, n) == 0);
  err = clEnqueueUnmapMemObject(q, b, p, 0, NULL, NULL);
  clFinish(q);
  snprintf(what, sizeof what, "%s: unmap", tag);
  check(what, err == CL_SUCCESS);

  /* Map a range for writing, change it, unmap: the buffer changed there. */
  size_t off = 4096, len = 8192;
  p = clEnqueueMapBuffer(q, b, CL_TRUE, CL_MAP_READ | CL_MAP_WRITE, off, len, 0, NULL, NULL, &err);
  int same = err == CL_SUCCESS && p && memcmp(p, data + off, len) == 0;
  if (p) for (size_t i = 0; i < len; i++) p[i] ^= 0xff;
  clEnqueueUnmapMemObject(q, b, p, 0, NULL, NULL);
  clEnqueueReadBuffer(q, b, CL_TRUE, 0, n, back, 0, NULL, NULL);
  int changed = 1;
  for (size_t i = 0; i < n; i++) {
    unsigned char want = (i >= off && i < off + len) ? (unsigned char)(data[i] ^ 0xff) : data[i];
    if (back[i] != want) { changed = 0; break; }
  }
  snprintf(what, sizeof what, "%s: map a range for writing", tag);
  check(what, same && changed);

  /* Write-invalidate: fill the range, unmap, read back. */
  p = clEnqueueMapBuffer(q, b, CL_TRUE, CL_MAP_WRITE_INVALIDATE_REGION, 0, len, 0, NULL, NULL, &err);
  if (p) memset(p, 0x5a, len);
  clEnqueueUnmapMemObject(q, b, p, 0, NULL, NULL);
  clEnqueueReadBuffer(q, b, CL_TRUE, 0, len, back, 0, NULL, NULL);
  int filled = err == CL_SUCCESS && p;
  for (size_t i = 0; i < len && filled; i++) filled = back[i] == 0x5a;
  snprintf(what, sizeof what, "%s: map to overwrite", tag);
  check(what, filled);

  /* Non-blocking map with an event, unmap with an event. */
  cl_event ev = NULL, ev2 = NULL;
  p = clEnqueueMapBuffer(q, b, CL_FALSE, CL_MAP_READ, len, len, 0, NULL, &ev, &err);
  int evok = err == CL_SUCCESS && ev && clWaitForEvents(1, &ev) == CL_SUCCESS;
  /* Byte `len` lies in the range changed above. */
  evok = evok && p && p[0] == (unsigned char)(data[len] ^ 0xff);
  err = clEnqueueUnmapMemObject(q, b, p, 0, NULL, &ev2);
  evok = evok && err == CL_SUCCESS && ev2 && clWaitForEvents(1, &ev2) == CL_SUCCESS;
  if (ev) clReleaseEvent(ev);
  if (ev2) clReleaseEvent(ev2);
  snprintf(what, sizeof what, "%s: map and unmap with events", tag);
  check(what, evok);

  /* Two mappings of one buffer at once. */
  unsigned char *a = clEnqueueMapBuffer(q, b, CL_TRUE, CL_MAP_WRITE, 0, 16, 0, NULL, NULL, &err);
  unsigned char *c = clEnqueueMapBuffer(q, b, CL_TRUE, CL_MAP_WRITE, n - 16, 16, 0, NULL, NULL, &err);
  if (a) memset(a, 1, 16);
  if (c) memset(c, 2, 16);
  clEnqueueUnmapMemObject(q, b, c, 0, NULL, NULL);
  clEnqueueUnmapMemObject(q, b, a, 0, NULL, NULL);
  unsigned char head[16], tail[16];
  clEnqueueReadBuffer(q, b, CL_TRUE, 0, 16, head, 0, NULL, NULL);
  clEnqueueReadBuffer(q, b, CL_TRUE, n - 16, 16, tail, 0, NULL, NULL);
  snprintf(what, sizeof what, "%s: two mappings at once", tag);
  check(what, a && c && head[0] == 1 && head[15] == 1 && tail[0] == 2 && tail[15] == 2);

  /* Errors. */
  p = clEnqueueMapBuffer(q, b, CL_TRUE, CL_MAP_READ, n - 8, 16, 0, NULL, NULL, &err);
  printf("%s: map past the end: %d\n", tag, err);
  p = clEnqueueMapBuffer(q, b, CL_TRUE, CL_MAP_READ, 0, 0, 0, NULL, NULL, &err);
  printf("%s: map of 0 bytes: %d\n", tag, err);
  err = clEnqueueUnmapMemObject(q, b, data, 0, NULL, NULL);
  printf("%s: unmap of a pointer never mapped: %d\n", tag, err);
  clFinish(q);
  clReleaseMemObject(b);
  free(data);
  free(back);
  return 0;
}

int main(void) {
  cl_platform_id pl; cl_device_id d; cl_int err;
  clGetPlatformIDs(1, &pl, NULL);
  clGetDeviceIDs(pl, CL_DEVICE_TYPE_ALL, 1, &d, NULL);
  cl_context ctx = clCreateContext(NULL, 1, &d, NULL, NULL, &err);
  cl_command_queue q = clCreateCommandQueueWithProperties(ctx, d, NULL, &err);
  test_buffer(ctx, q, 1 << 20, "1 MiB");
  test_buffer(ctx, q, 96 << 20, "96 MiB");
  clReleaseCommandQueue(q);
  clReleaseContext(ctx);
  printf("failures: %d\n", failures);
  return failures != 0;
}
