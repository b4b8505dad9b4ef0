/*
 * clEnqueueMapImage and clEnqueueUnmapMemObject on images: a 2D image, a
 * 3D image and a 1D image array, mapped for reading (contents and the
 * pitches the map returns), for writing (changes seen by a later read),
 * with CL_MAP_WRITE_INVALIDATE_REGION, non-blocking with an event, two
 * mappings of one image at once, and the errors of invalid maps.
 * Every line printed is the same natively and remoted.
 */
#define CL_TARGET_OPENCL_VERSION 300
#include <CL/cl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(x)                                                                         \
    do {                                                                                 \
        cl_int e_ = (x);                                                                 \
        if (e_ != CL_SUCCESS) {                                                          \
            fprintf(stderr, "%s:%d: %s failed: %d\n", __FILE__, __LINE__, #x, e_);       \
            exit(1);                                                                     \
        }                                                                                \
    } while (0)

static cl_context ctx;
static cl_command_queue q;

/* Sum of the bytes of a mapped region of `w` x `h` x `d` elements of
 * `elem` bytes, walked with the pitches the map returned. */
static unsigned long sum_mapped(const unsigned char *p, size_t w, size_t h, size_t d, size_t elem,
                                size_t row, size_t slice) {
    unsigned long s = 0;
    for (size_t z = 0; z < d; z++)
        for (size_t y = 0; y < h; y++)
            for (size_t x = 0; x < w * elem; x++) s += p[z * slice + y * row + x] * (x + 1);
    return s;
}

static cl_mem image(cl_mem_object_type type, size_t w, size_t h, size_t depth, size_t n) {
    cl_image_format f = {CL_RGBA, CL_UNSIGNED_INT8};
    cl_image_desc d;
    memset(&d, 0, sizeof d);
    d.image_type = type;
    d.image_width = w;
    d.image_height = h;
    d.image_depth = depth;
    d.image_array_size = n;
    cl_int err;
    cl_mem m = clCreateImage(ctx, CL_MEM_READ_WRITE, &f, &d, NULL, &err);
    CHECK(err);
    /* Fill it with a known pattern. */
    size_t rows = h ? h : 1, slices = depth ? depth : (n ? n : 1);
    if (type == CL_MEM_OBJECT_IMAGE1D_ARRAY) rows = 1;
    size_t bytes = w * 4 * rows * slices;
    unsigned char *data = malloc(bytes);
    for (size_t i = 0; i < bytes; i++) data[i] = (unsigned char)(i * 7 + 3);
    size_t origin[3] = {0, 0, 0};
    size_t region[3] = {w, type == CL_MEM_OBJECT_IMAGE1D_ARRAY ? n : rows,
                        type == CL_MEM_OBJECT_IMAGE1D_ARRAY ? 1 : slices};
    CHECK(clEnqueueWriteImage(q, m, CL_TRUE, origin, region, 0, 0, data, 0, NULL, NULL));
    free(data);
    return m;
}

int main(void) {
    cl_platform_id platform;
    cl_device_id device;
    cl_int err;
    CHECK(clGetPlatformIDs(1, &platform, NULL));
    CHECK(clGetDeviceIDs(platform, CL_DEVICE_TYPE_ALL, 1, &device, NULL));
    ctx = clCreateContext(NULL, 1, &device, NULL, NULL, &err);
    CHECK(err);
    q = clCreateCommandQueueWithProperties(ctx, device, NULL, &err);
    CHECK(err);

    /* 2D: read a sub-rectangle. */
    cl_mem img = image(CL_MEM_OBJECT_IMAGE2D, 64, 32, 0, 0);
    size_t origin[3] = {8, 4, 0}, region[3] = {16, 8, 1};
    size_t row = 0, slice = 7;
    unsigned char *p = clEnqueueMapImage(q, img, CL_TRUE, CL_MAP_READ, origin, region, &row, &slice,
                                         0, NULL, NULL, &err);
    CHECK(err);
    printf("2D map for reading: row pitch %zu, slice pitch %zu, sum %lu\n", row, slice,
           sum_mapped(p, 16, 8, 1, 4, row, 0));
    /* A second mapping of the same image at once. */
    size_t o2[3] = {0, 0, 0}, r2[3] = {4, 4, 1}, row2 = 0;
    unsigned char *p2 = clEnqueueMapImage(q, img, CL_TRUE, CL_MAP_READ, o2, r2, &row2, NULL, 0,
                                          NULL, NULL, &err);
    CHECK(err);
    printf("second mapping: sum %lu\n", sum_mapped(p2, 4, 4, 1, 4, row2, 0));
    CHECK(clEnqueueUnmapMemObject(q, img, p2, 0, NULL, NULL));
    CHECK(clEnqueueUnmapMemObject(q, img, p, 0, NULL, NULL));

    /* 2D: write through a mapping, read back with clEnqueueReadImage. */
    cl_event mapped;
    p = clEnqueueMapImage(q, img, CL_FALSE, CL_MAP_WRITE, origin, region, &row, NULL, 0, NULL,
                          &mapped, &err);
    CHECK(err);
    CHECK(clWaitForEvents(1, &mapped));
    cl_command_type type = 0;
    CHECK(clGetEventInfo(mapped, CL_EVENT_COMMAND_TYPE, sizeof type, &type, NULL));
    printf("non-blocking map: event command type %#x\n", type);
    CHECK(clReleaseEvent(mapped));
    for (size_t y = 0; y < 8; y++) memset(p + y * row, 0x11 * (int)(y + 1), 16 * 4);
    cl_event unmapped;
    CHECK(clEnqueueUnmapMemObject(q, img, p, 0, NULL, &unmapped));
    CHECK(clWaitForEvents(1, &unmapped));
    CHECK(clReleaseEvent(unmapped));
    unsigned char back[64 * 32 * 4];
    size_t all[3] = {64, 32, 1}, zero[3] = {0, 0, 0};
    CHECK(clEnqueueReadImage(q, img, CL_TRUE, zero, all, 0, 0, back, 0, NULL, NULL));
    printf("after writing through the map: pixel (8,4) = %d, (23,11) = %d, (24,11) = %d, (7,4) = %d\n",
           back[(4 * 64 + 8) * 4], back[(11 * 64 + 23) * 4], back[(11 * 64 + 24) * 4],
           back[(4 * 64 + 7) * 4]);

    /* CL_MAP_WRITE_INVALIDATE_REGION: the program fills all of it. */
    p = clEnqueueMapImage(q, img, CL_TRUE, CL_MAP_WRITE_INVALIDATE_REGION, zero, r2, &row, NULL, 0,
                          NULL, NULL, &err);
    CHECK(err);
    for (size_t y = 0; y < 4; y++) memset(p + y * row, 0x77, 4 * 4);
    CHECK(clEnqueueUnmapMemObject(q, img, p, 0, NULL, NULL));
    CHECK(clEnqueueReadImage(q, img, CL_TRUE, zero, all, 0, 0, back, 0, NULL, NULL));
    printf("after an invalidating map: pixel (0,0) = %d, (3,3) = %d, (4,4) = %d\n", back[0],
           back[(3 * 64 + 3) * 4], back[(4 * 64 + 4) * 4]);

    /* 3D. */
    cl_mem vol = image(CL_MEM_OBJECT_IMAGE3D, 16, 8, 4, 0);
    size_t o3[3] = {2, 1, 1}, r3[3] = {8, 4, 2};
    p = clEnqueueMapImage(q, vol, CL_TRUE, CL_MAP_READ, o3, r3, &row, &slice, 0, NULL, NULL, &err);
    CHECK(err);
    printf("3D map: row pitch %zu, slice pitch %zu, sum %lu\n", row, slice,
           sum_mapped(p, 8, 4, 2, 4, row, slice));
    CHECK(clEnqueueUnmapMemObject(q, vol, p, 0, NULL, NULL));

    /* 1D array: the slice pitch steps from one image of the array to the next. */
    cl_mem arr = image(CL_MEM_OBJECT_IMAGE1D_ARRAY, 32, 0, 0, 6);
    size_t oa[3] = {4, 1, 0}, ra[3] = {10, 3, 1};
    p = clEnqueueMapImage(q, arr, CL_TRUE, CL_MAP_READ, oa, ra, &row, &slice, 0, NULL, NULL, &err);
    CHECK(err);
    printf("1D array map: slice pitch %zu, sum %lu\n", slice, sum_mapped(p, 10, 1, 3, 4, 0, slice));
    CHECK(clEnqueueUnmapMemObject(q, arr, p, 0, NULL, NULL));

    /* Reads and writes of one layer with a slice pitch larger than the row
     * pitch: the images of a 1D array 64 bytes apart in the program's memory. */
    unsigned char lay[3 * 64];
    memset(lay, 0, sizeof lay);
    CHECK(clEnqueueReadImage(q, arr, CL_TRUE, oa, ra, 40, 64, lay, 0, NULL, NULL));
    printf("1D array read with a slice pitch: sum %lu\n", sum_mapped(lay, 10, 1, 3, 4, 0, 64));
    for (int i = 0; i < 3; i++) memset(lay + i * 64, 0x20 + i, 40);
    cl_event wrote;
    CHECK(clEnqueueWriteImage(q, arr, CL_FALSE, oa, ra, 40, 64, lay, 0, NULL, &wrote));
    CHECK(clWaitForEvents(1, &wrote));
    CHECK(clGetEventInfo(wrote, CL_EVENT_COMMAND_TYPE, sizeof type, &type, NULL));
    printf("1D array write with a slice pitch: event command type %#x\n", type);
    CHECK(clReleaseEvent(wrote));
    unsigned char whole[6 * 32 * 4];
    size_t wa[3] = {32, 6, 1};
    CHECK(clEnqueueReadImage(q, arr, CL_TRUE, zero, wa, 0, 0, whole, 0, NULL, NULL));
    printf("after it: image 1 pixel 4 = %d, image 3 pixel 13 = %d, image 4 pixel 4 = %d\n",
           whole[(1 * 32 + 4) * 4], whole[(3 * 32 + 13) * 4], whole[(4 * 32 + 4) * 4]);

    /* Errors. */
    clEnqueueMapImage(q, img, CL_TRUE, CL_MAP_READ, origin, region, NULL, NULL, 0, NULL, NULL, &err);
    printf("no row pitch pointer: %d\n", err);
    clEnqueueMapImage(q, vol, CL_TRUE, CL_MAP_READ, o3, r3, &row, NULL, 0, NULL, NULL, &err);
    printf("3D without a slice pitch pointer: %d\n", err);
    size_t big[3] = {65, 1, 1};
    clEnqueueMapImage(q, img, CL_TRUE, CL_MAP_READ, zero, big, &row, NULL, 0, NULL, NULL, &err);
    printf("region past the image: %d\n", err);
    clEnqueueMapImage(q, img, CL_TRUE, CL_MAP_READ | CL_MAP_WRITE_INVALIDATE_REGION, zero, r2, &row,
                      NULL, 0, NULL, NULL, &err);
    printf("read with invalidate: %d\n", err);
    int local = 0;
    printf("unmap of a pointer never mapped: %d\n",
           clEnqueueUnmapMemObject(q, img, &local, 0, NULL, NULL));

    CHECK(clFinish(q));
    clReleaseMemObject(img);
    clReleaseMemObject(vol);
    clReleaseMemObject(arr);
    clReleaseCommandQueue(q);
    clReleaseContext(ctx);
    printf("done\n");
    return 0;
}
