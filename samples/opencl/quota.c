/* Allocates 256 KiB memory objects by one allocation path until one fails,
 * then frees one and allocates again: prints how many were created, the
 * error of the first that failed (0: none did), and the error of the
 * retry. Paths: buffer, buffer_properties, image, image2d, pipe,
 * sub_buffer (sub-buffers of one 768 KiB buffer, which take no memory of
 * their own), svm (clSVMAlloc, which reports a failure by NULL alone:
 * printed as -5, CL_OUT_OF_RESOURCES). Usage: quota PATH */
#define CL_TARGET_OPENCL_VERSION 300
#define CL_USE_DEPRECATED_OPENCL_1_2_APIS
#include <CL/cl.h>
#include <stdio.h>
#include <string.h>

#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

#define KIB 1024
#define MAX 8

static cl_context c;
static cl_mem parent;

static cl_mem create(const char *path, int i, cl_int *e) {
    cl_image_format fmt = {CL_RGBA, CL_UNSIGNED_INT8};
    cl_image_desc desc;
    memset(&desc, 0, sizeof desc);
    desc.image_type = CL_MEM_OBJECT_IMAGE2D;
    desc.image_width = 256;
    desc.image_height = 256;
    if (!strcmp(path, "buffer"))
        return clCreateBuffer(c, CL_MEM_READ_WRITE, 256 * KIB, NULL, e);
    if (!strcmp(path, "buffer_properties"))
        return clCreateBufferWithProperties(c, NULL, CL_MEM_READ_WRITE, 256 * KIB, NULL, e);
    if (!strcmp(path, "image"))
        return clCreateImage(c, CL_MEM_READ_WRITE, &fmt, &desc, NULL, e);
    if (!strcmp(path, "image2d"))
        return clCreateImage2D(c, CL_MEM_READ_WRITE, &fmt, 256, 256, 0, NULL, e);
    if (!strcmp(path, "pipe"))
        return clCreatePipe(c, CL_MEM_READ_WRITE, 1024, 256, NULL, e);
    if (!strcmp(path, "sub_buffer")) {
        cl_buffer_region r = {(size_t)(i % 3) * 256 * KIB, 256 * KIB};
        return clCreateSubBuffer(parent, CL_MEM_READ_WRITE, CL_BUFFER_CREATE_TYPE_REGION, &r, e);
    }
    *e = CL_INVALID_VALUE;
    return NULL;
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "buffer";
    cl_platform_id p;
    cl_device_id d;
    cl_int e;
    if (clGetPlatformIDs(1, &p, NULL) || clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, 1, &d, NULL)) {
        printf("no device\n");
        return 1;
    }
    c = clCreateContext(NULL, 1, &d, NULL, NULL, &e);
    if (!strcmp(path, "sub_buffer")) {
        parent = clCreateBuffer(c, CL_MEM_READ_WRITE, 768 * KIB, NULL, &e);
        if (e) {
            printf("parent failed %d\n", e);
            return 1;
        }
    }
    if (!strcmp(path, "svm")) {
        void *s[MAX];
        int n = 0;
        cl_int first = 0;
        for (; n < MAX; n++) {
            s[n] = clSVMAlloc(c, CL_MEM_READ_WRITE, 256 * KIB, 0);
            if (!s[n]) {
                first = CL_OUT_OF_RESOURCES;
                break;
            }
        }
        int made = n;
        cl_int retry = -9999;
        if (n > 0) {
            clSVMFree(c, s[--n]);
            s[n] = clSVMAlloc(c, CL_MEM_READ_WRITE, 256 * KIB, 0);
            retry = s[n] ? 0 : CL_OUT_OF_RESOURCES;
            if (s[n]) n++;
        }
        printf("created %d\nfirst_error %d\nretry %d\n", made, first, retry);
        for (int i = 0; i < n; i++) clSVMFree(c, s[i]);
        clReleaseContext(c);
        return 0;
    }
    cl_mem m[MAX];
    int n = 0;
    cl_int first = 0;
    for (; n < MAX; n++) {
        m[n] = create(path, n, &first);
        if (!m[n])
            break;
        first = 0;
    }
    int made = n;
    cl_int retry = -9999;
    if (n > 0) {
        clReleaseMemObject(m[--n]);
        cl_mem again = create(path, n, &retry);
        if (again)
            m[n++] = again;
    }
    printf("created %d\nfirst_error %d\nretry %d\n", made, first, retry);
    for (int i = 0; i < n; i++)
        clReleaseMemObject(m[i]);
    if (parent)
        clReleaseMemObject(parent);
    clReleaseContext(c);
    return 0;
}
