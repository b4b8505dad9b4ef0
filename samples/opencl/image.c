/*
 * image.c - a 3x3 box blur of a 2D RGBA image, converted to grayscale.
 *
 * The image is created with clCreateImage (host_ptr NULL) and filled with
 * clEnqueueWriteImage using an explicit row pitch larger than a row (the
 * host rows are padded). The kernel reads it through a sampler made by
 * clCreateSampler (clamp to edge, nearest) with read_imagef and writes one
 * byte per pixel to a buffer, which is read back and checksummed.
 * Prints that images are unsupported and exits 0 if the device has no image
 * support. Uses the first platform and its first device; exits non-zero
 * (printing the error code) on any OpenCL error.
 */
#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 300
#endif
#define CL_USE_DEPRECATED_OPENCL_1_2_APIS /* clCreateSampler */
#include <CL/cl.h>
#include <stdio.h>
#include <stdlib.h>

#define W 64
#define H 48
#define PITCH (W * 4 + 32) /* bytes per host row: 32 bytes of padding */

#define CHECK(call)                                                        \
    do {                                                                   \
        cl_int err_ = (call);                                              \
        if (err_ != CL_SUCCESS) {                                          \
            printf("OpenCL error %d at %s:%d: %s\n", err_, __FILE__,       \
                   __LINE__, #call);                                       \
            exit(1);                                                       \
        }                                                                  \
    } while (0)

static const char *source =
    "__kernel void blur_gray(__read_only image2d_t img, sampler_t smp,\n"
    "                        __global uchar *out) {\n"
    "    int x = get_global_id(0), y = get_global_id(1);\n"
    "    float4 sum = (float4)(0.0f);\n"
    "    for (int dy = -1; dy <= 1; dy++)\n"
    "        for (int dx = -1; dx <= 1; dx++)\n"
    "            sum += read_imagef(img, smp, (int2)(x + dx, y + dy));\n"
    "    float4 avg = sum / 9.0f;\n"
    "    float gray = 0.299f * avg.x + 0.587f * avg.y + 0.114f * avg.z;\n"
    "    out[y * get_global_size(0) + x] = convert_uchar_sat_rte(gray * 255.0f);\n"
    "}\n";

int main(void) {
    cl_int err;
    cl_platform_id platform;
    cl_device_id device;
    CHECK(clGetPlatformIDs(1, &platform, NULL));
    CHECK(clGetDeviceIDs(platform, CL_DEVICE_TYPE_ALL, 1, &device, NULL));

    cl_bool images = CL_FALSE;
    CHECK(clGetDeviceInfo(device, CL_DEVICE_IMAGE_SUPPORT, sizeof images, &images, NULL));
    if (!images) {
        printf("image: the device has no image support\n");
        return 0;
    }

    cl_context ctx = clCreateContext(NULL, 1, &device, NULL, NULL, &err);
    CHECK(err);
    cl_command_queue q = clCreateCommandQueueWithProperties(ctx, device, NULL, &err);
    CHECK(err);

    /* A padded host image: RGBA bytes, PITCH bytes per row. */
    static unsigned char pixels[H * PITCH];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < PITCH; x++) {
            unsigned char *p = &pixels[y * PITCH + x];
            if (x >= W * 4) { *p = 0xEE; continue; } /* padding, not image data */
            switch (x % 4) {
            case 0: *p = (unsigned char)(x / 4 * 4); break;        /* red: ramp */
            case 1: *p = (unsigned char)(y * 5); break;            /* green: ramp */
            case 2: *p = ((x / 4 / 8 + y / 8) % 2) ? 255 : 0; break; /* blue: checkers */
            default: *p = 255; break;
            }
        }

    cl_image_format fmt = {CL_RGBA, CL_UNORM_INT8};
    cl_image_desc desc = {0};
    desc.image_type = CL_MEM_OBJECT_IMAGE2D;
    desc.image_width = W;
    desc.image_height = H;
    cl_mem img = clCreateImage(ctx, CL_MEM_READ_ONLY, &fmt, &desc, NULL, &err);
    CHECK(err);
    size_t origin[3] = {0, 0, 0}, region[3] = {W, H, 1};
    CHECK(clEnqueueWriteImage(q, img, CL_TRUE, origin, region, PITCH, 0, pixels, 0, NULL, NULL));

    cl_sampler smp = clCreateSampler(ctx, CL_FALSE, CL_ADDRESS_CLAMP_TO_EDGE, CL_FILTER_NEAREST, &err);
    CHECK(err);
    cl_mem out = clCreateBuffer(ctx, CL_MEM_WRITE_ONLY, W * H, NULL, &err);
    CHECK(err);

    cl_program prog = clCreateProgramWithSource(ctx, 1, &source, NULL, &err);
    CHECK(err);
    CHECK(clBuildProgram(prog, 1, &device, NULL, NULL, NULL));
    cl_kernel k = clCreateKernel(prog, "blur_gray", &err);
    CHECK(err);
    CHECK(clSetKernelArg(k, 0, sizeof(cl_mem), &img));
    CHECK(clSetKernelArg(k, 1, sizeof(cl_sampler), &smp));
    CHECK(clSetKernelArg(k, 2, sizeof(cl_mem), &out));

    size_t global[2] = {W, H};
    CHECK(clEnqueueNDRangeKernel(q, k, 2, NULL, global, NULL, 0, NULL, NULL));
    static unsigned char gray[W * H];
    CHECK(clEnqueueReadBuffer(q, out, CL_TRUE, 0, sizeof gray, gray, 0, NULL, NULL));

    /* Read one row back from the image too, into a padded host row. */
    unsigned char row[PITCH * 2];
    for (int i = 0; i < PITCH * 2; i++) row[i] = 0x5A;
    size_t origin2[3] = {0, 10, 0}, region2[3] = {W, 2, 1};
    CHECK(clEnqueueReadImage(q, img, CL_TRUE, origin2, region2, PITCH, 0, row, 0, NULL, NULL));
    int row_ok = 1;
    for (int i = 0; i < PITCH * 2; i++) {
        int in_data = i % PITCH < W * 4;
        unsigned char want = in_data ? pixels[10 * PITCH + i] : 0x5A;
        if (row[i] != want) row_ok = 0;
    }

    unsigned long sum = 0, weighted = 0;
    for (int i = 0; i < W * H; i++) {
        sum += gray[i];
        weighted += (unsigned long)gray[i] * (unsigned long)(i % 251 + 1);
    }
    printf("image: %dx%d RGBA8, row pitch %d\n", W, H, PITCH);
    printf("gray checksum: %lu (weighted %lu)\n", sum, weighted);
    printf("gray[0][0] = %d, gray[0][%d] = %d, gray[%d][0] = %d, gray[%d][%d] = %d\n", gray[0],
           W - 1, gray[W - 1], H - 1, gray[(H - 1) * W], H - 1, W - 1, gray[H * W - 1]);
    printf("read-back rows intact: %s\n", row_ok ? "yes" : "no");

    CHECK(clReleaseKernel(k));
    CHECK(clReleaseProgram(prog));
    CHECK(clReleaseSampler(smp));
    CHECK(clReleaseMemObject(out));
    CHECK(clReleaseMemObject(img));
    CHECK(clReleaseCommandQueue(q));
    CHECK(clReleaseContext(ctx));
    return row_ok ? 0 : 1;
}
