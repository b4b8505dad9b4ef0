/*
 * info_matrix.c - every kind of memory object (buffer, sub-buffer, buffers
 * over host memory, every image type, a pipe), a program built from source
 * and kernels, and every parameter of clGetMemObjectInfo, clGetImageInfo,
 * clGetPipeInfo, clGetProgramInfo, clGetProgramBuildInfo, clGetKernelInfo,
 * clGetKernelArgInfo, clGetKernelWorkGroupInfo, clGetEventInfo and
 * clGetEventProfilingInfo asked of each, one line per query.
 *
 * Each line holds the call's status, the size the driver reports and the
 * value: numbers as numbers, strings as strings, handles by the name of the
 * object they are (or NULL, or "unknown"), host pointers as an offset from
 * the program's own array. Profiling times print as their order (each at
 * least the one before). So the output does not depend on where objects
 * live, and a run through a remoting layer must print the same.
 */
#define CL_TARGET_OPENCL_VERSION 300
#include <CL/cl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SETUP(call)                                                            \
    do {                                                                       \
        cl_int err_ = (call);                                                  \
        if (err_ != CL_SUCCESS) {                                              \
            printf("OpenCL error %d in setup at line %d: %s\n", err_,         \
                   __LINE__, #call);                                           \
            exit(100);                                                         \
        }                                                                      \
    } while (0)

/* Known objects, by name. */
static struct { const char *name; void *h; } known[64];
static int nknown = 0;
static void name_it(const char *name, void *h) {
    known[nknown].name = name;
    known[nknown].h = h;
    nknown++;
}
static const char *name_of(void *h) {
    if (!h) return "NULL";
    for (int i = 0; i < nknown; i++)
        if (known[i].h == h) return known[i].name;
    return "unknown";
}

static char host[1 << 16];

/* How a value prints. */
enum kind { U32, I32, U64, SZ, SZ3, STR, HANDLE, HANDLES, HOSTPTR, FORMAT, PROPS, SIZES, RAW,
            /* A count the driver may still be changing: the specification calls an event's
             * reference count "immediately stale" (PoCL drops its own references to a
             * finished command on its own thread), so only "at least one" is stable. */
            LIVE };

typedef cl_int (*query_fn)(void *obj, void *extra, cl_uint param, size_t size, void *value,
                           size_t *ret);

static void show(const char *what, const char *pname, enum kind k, query_fn f, void *obj,
                 void *extra, cl_uint param) {
    size_t size = 0;
    cl_int rc = f(obj, extra, param, 0, NULL, &size);
    printf("%-14s %-44s", what, pname);
    if (rc != CL_SUCCESS) {
        printf(" rc=%d\n", rc);
        return;
    }
    unsigned char *v = calloc(1, size + 16);
    rc = f(obj, extra, param, size, v, NULL);
    printf(" rc=%d size=%zu", rc, size);
    if (rc != CL_SUCCESS) {
        printf("\n");
        free(v);
        return;
    }
    switch (k) {
    case U32: printf(" %u", *(cl_uint *)v); break;
    case I32: printf(" %d", *(cl_int *)v); break;
    case U64: printf(" %llu", (unsigned long long)*(cl_ulong *)v); break;
    case SZ: printf(" %zu", *(size_t *)v); break;
    case SZ3: printf(" %zu %zu %zu", ((size_t *)v)[0], ((size_t *)v)[1], ((size_t *)v)[2]); break;
    case STR: printf(" \"%s\"", (char *)v); break;
    case HANDLE: printf(" %s", name_of(*(void **)v)); break;
    case HANDLES:
        for (size_t i = 0; i < size / sizeof(void *); i++) printf(" %s", name_of(((void **)v)[i]));
        break;
    case HOSTPTR: {
        char *p = *(char **)v;
        if (!p) printf(" NULL");
        else if (p >= host && p < host + sizeof host) printf(" host+%td", p - host);
        else printf(" elsewhere");
        break;
    }
    case FORMAT: printf(" order=%#x type=%#x", ((cl_uint *)v)[0], ((cl_uint *)v)[1]); break;
    case PROPS:
        for (size_t i = 0; i < size / 8; i++) printf(" %llu", (unsigned long long)((cl_ulong *)v)[i]);
        break;
    case SIZES:
        for (size_t i = 0; i < size / sizeof(size_t); i++) printf(" %s", ((size_t *)v)[i] ? "non-zero" : "0");
        break;
    case RAW: break;
    case LIVE: printf(" %s", *(cl_uint *)v >= 1 ? "at least 1" : "0"); break;
    }
    printf("\n");
    free(v);
}

static cl_int mem_q(void *o, void *x, cl_uint p, size_t s, void *v, size_t *r) {
    (void)x; return clGetMemObjectInfo((cl_mem)o, p, s, v, r);
}
static cl_int image_q(void *o, void *x, cl_uint p, size_t s, void *v, size_t *r) {
    (void)x; return clGetImageInfo((cl_mem)o, p, s, v, r);
}
static cl_int pipe_q(void *o, void *x, cl_uint p, size_t s, void *v, size_t *r) {
    (void)x; return clGetPipeInfo((cl_mem)o, p, s, v, r);
}
static cl_int program_q(void *o, void *x, cl_uint p, size_t s, void *v, size_t *r) {
    (void)x; return clGetProgramInfo((cl_program)o, p, s, v, r);
}
static cl_int build_q(void *o, void *x, cl_uint p, size_t s, void *v, size_t *r) {
    return clGetProgramBuildInfo((cl_program)o, (cl_device_id)x, p, s, v, r);
}
static cl_int kernel_q(void *o, void *x, cl_uint p, size_t s, void *v, size_t *r) {
    (void)x; return clGetKernelInfo((cl_kernel)o, p, s, v, r);
}
static cl_uint arg_index = 0;
static cl_int arg_q(void *o, void *x, cl_uint p, size_t s, void *v, size_t *r) {
    (void)x; return clGetKernelArgInfo((cl_kernel)o, arg_index, p, s, v, r);
}
static cl_int wg_q(void *o, void *x, cl_uint p, size_t s, void *v, size_t *r) {
    return clGetKernelWorkGroupInfo((cl_kernel)o, (cl_device_id)x, p, s, v, r);
}
static cl_int event_q(void *o, void *x, cl_uint p, size_t s, void *v, size_t *r) {
    (void)x; return clGetEventInfo((cl_event)o, p, s, v, r);
}

#define Q(what, k, fn, obj, extra, param) show(what, #param, k, fn, obj, extra, param)

static void mem_info(const char *what, cl_mem m) {
    Q(what, U32, mem_q, m, NULL, CL_MEM_TYPE);
    Q(what, U64, mem_q, m, NULL, CL_MEM_FLAGS);
    Q(what, SZ, mem_q, m, NULL, CL_MEM_SIZE);
    Q(what, HOSTPTR, mem_q, m, NULL, CL_MEM_HOST_PTR);
    Q(what, U32, mem_q, m, NULL, CL_MEM_MAP_COUNT);
    Q(what, U32, mem_q, m, NULL, CL_MEM_REFERENCE_COUNT);
    Q(what, HANDLE, mem_q, m, NULL, CL_MEM_CONTEXT);
    Q(what, HANDLE, mem_q, m, NULL, CL_MEM_ASSOCIATED_MEMOBJECT);
    Q(what, SZ, mem_q, m, NULL, CL_MEM_OFFSET);
    Q(what, U32, mem_q, m, NULL, CL_MEM_USES_SVM_POINTER);
    Q(what, PROPS, mem_q, m, NULL, CL_MEM_PROPERTIES);
}

static void image_info(const char *what, cl_mem m) {
    mem_info(what, m);
    Q(what, FORMAT, image_q, m, NULL, CL_IMAGE_FORMAT);
    Q(what, SZ, image_q, m, NULL, CL_IMAGE_ELEMENT_SIZE);
    Q(what, SZ, image_q, m, NULL, CL_IMAGE_ROW_PITCH);
    Q(what, SZ, image_q, m, NULL, CL_IMAGE_SLICE_PITCH);
    Q(what, SZ, image_q, m, NULL, CL_IMAGE_WIDTH);
    Q(what, SZ, image_q, m, NULL, CL_IMAGE_HEIGHT);
    Q(what, SZ, image_q, m, NULL, CL_IMAGE_DEPTH);
    Q(what, SZ, image_q, m, NULL, CL_IMAGE_ARRAY_SIZE);
    Q(what, HANDLE, image_q, m, NULL, CL_IMAGE_BUFFER);
    Q(what, U32, image_q, m, NULL, CL_IMAGE_NUM_MIP_LEVELS);
    Q(what, U32, image_q, m, NULL, CL_IMAGE_NUM_SAMPLES);
}

static const char *SRC =
    "__kernel void scale(__global float *a, __constant float *b, __local float *l,\n"
    "                    const float k, read_only image2d_t img, sampler_t s) {\n"
    "  size_t i = get_global_id(0);\n"
    "  l[get_local_id(0)] = a[i];\n"
    "  barrier(CLK_LOCAL_MEM_FENCE);\n"
    "  a[i] = l[get_local_id(0)] * k + b[0] + read_imagef(img, s, (int2)(0, 0)).x;\n"
    "}\n"
    "__kernel __attribute__((reqd_work_group_size(8, 1, 1)))\n"
    "void fixed(__global int *a) { a[get_global_id(0)] = 1; }\n";

int main(void) {
    cl_int err;
    cl_platform_id pl;
    cl_device_id d;
    SETUP(clGetPlatformIDs(1, &pl, NULL));
    SETUP(clGetDeviceIDs(pl, CL_DEVICE_TYPE_ALL, 1, &d, NULL));
    name_it("platform", pl);
    name_it("device", d);
    cl_context ctx = clCreateContext(NULL, 1, &d, NULL, NULL, &err);
    SETUP(err);
    name_it("context", ctx);
    cl_queue_properties qp[] = {CL_QUEUE_PROPERTIES, CL_QUEUE_PROFILING_ENABLE, 0};
    cl_command_queue q = clCreateCommandQueueWithProperties(ctx, d, qp, &err);
    SETUP(err);
    name_it("queue", q);

    /* Memory objects of every kind. */
    cl_mem buf = clCreateBuffer(ctx, CL_MEM_READ_WRITE, 4096, NULL, &err);
    SETUP(err);
    name_it("buffer", buf);
    mem_info("buffer", buf);
    cl_buffer_region reg = {1024, 512};
    cl_mem sub = clCreateSubBuffer(buf, CL_MEM_READ_ONLY, CL_BUFFER_CREATE_TYPE_REGION, &reg, &err);
    SETUP(err);
    name_it("sub-buffer", sub);
    mem_info("sub-buffer", sub);
    cl_mem use = clCreateBuffer(ctx, CL_MEM_USE_HOST_PTR, 2048, host, &err);
    SETUP(err);
    name_it("use-host", use);
    mem_info("use-host", use);
    cl_mem copy = clCreateBuffer(ctx, CL_MEM_COPY_HOST_PTR | CL_MEM_HOST_READ_ONLY, 256, host, &err);
    SETUP(err);
    name_it("copy-host", copy);
    mem_info("copy-host", copy);
    cl_mem_properties none[] = {0};
    cl_mem withp = clCreateBufferWithProperties(ctx, none, CL_MEM_WRITE_ONLY, 128, NULL, &err);
    SETUP(err);
    name_it("with-props", withp);
    mem_info("with-props", withp);

    cl_image_format fmt = {CL_RGBA, CL_FLOAT};
    struct { const char *name; cl_mem_object_type type; size_t w, h, d, n; } kinds[] = {
        {"image1d", CL_MEM_OBJECT_IMAGE1D, 64, 0, 0, 0},
        {"image2d", CL_MEM_OBJECT_IMAGE2D, 16, 8, 0, 0},
        {"image3d", CL_MEM_OBJECT_IMAGE3D, 8, 4, 2, 0},
        {"image1darray", CL_MEM_OBJECT_IMAGE1D_ARRAY, 32, 0, 0, 3},
        {"image2darray", CL_MEM_OBJECT_IMAGE2D_ARRAY, 8, 8, 0, 2},
    };
    cl_mem img2d = NULL;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        cl_image_desc desc;
        memset(&desc, 0, sizeof desc);
        desc.image_type = kinds[i].type;
        desc.image_width = kinds[i].w;
        desc.image_height = kinds[i].h;
        desc.image_depth = kinds[i].d;
        desc.image_array_size = kinds[i].n;
        cl_mem im = clCreateImage(ctx, CL_MEM_READ_ONLY, &fmt, &desc, NULL, &err);
        SETUP(err);
        name_it(kinds[i].name, im);
        image_info(kinds[i].name, im);
        if (kinds[i].type == CL_MEM_OBJECT_IMAGE2D) img2d = im;
    }
    {
        cl_mem backing = clCreateBuffer(ctx, CL_MEM_READ_WRITE, 64 * 16, NULL, &err);
        SETUP(err);
        name_it("image-backing", backing);
        cl_image_desc desc;
        memset(&desc, 0, sizeof desc);
        desc.image_type = CL_MEM_OBJECT_IMAGE1D_BUFFER;
        desc.image_width = 64;
        desc.buffer = backing;
        cl_mem im = clCreateImage(ctx, CL_MEM_READ_ONLY, &fmt, &desc, NULL, &err);
        SETUP(err);
        name_it("image1dbuffer", im);
        image_info("image1dbuffer", im);
    }
    {
        cl_mem pipe = clCreatePipe(ctx, CL_MEM_READ_WRITE, 16, 32, NULL, &err);
        printf("%-14s clCreatePipe rc=%d\n", "pipe", err);
        if (err == CL_SUCCESS) {
            name_it("pipe", pipe);
            mem_info("pipe", pipe);
            Q("pipe", U32, pipe_q, pipe, NULL, CL_PIPE_PACKET_SIZE);
            Q("pipe", U32, pipe_q, pipe, NULL, CL_PIPE_MAX_PACKETS);
            Q("pipe", PROPS, pipe_q, pipe, NULL, CL_PIPE_PROPERTIES);
        }
    }

    /* A program and its kernels. */
    cl_program prog = clCreateProgramWithSource(ctx, 1, &SRC, NULL, &err);
    SETUP(err);
    name_it("program", prog);
    Q("program", I32, build_q, prog, d, CL_PROGRAM_BUILD_STATUS);
    SETUP(clBuildProgram(prog, 1, &d, "-cl-kernel-arg-info -cl-mad-enable", NULL, NULL));
    Q("program", U32, program_q, prog, NULL, CL_PROGRAM_REFERENCE_COUNT);
    Q("program", HANDLE, program_q, prog, NULL, CL_PROGRAM_CONTEXT);
    Q("program", U32, program_q, prog, NULL, CL_PROGRAM_NUM_DEVICES);
    Q("program", HANDLES, program_q, prog, NULL, CL_PROGRAM_DEVICES);
    Q("program", STR, program_q, prog, NULL, CL_PROGRAM_SOURCE);
    Q("program", SIZES, program_q, prog, NULL, CL_PROGRAM_BINARY_SIZES);
    Q("program", SZ, program_q, prog, NULL, CL_PROGRAM_NUM_KERNELS);
    Q("program", STR, program_q, prog, NULL, CL_PROGRAM_KERNEL_NAMES);
    Q("program", RAW, program_q, prog, NULL, CL_PROGRAM_IL);
    Q("program", U32, program_q, prog, NULL, CL_PROGRAM_SCOPE_GLOBAL_CTORS_PRESENT);
    Q("program", U32, program_q, prog, NULL, CL_PROGRAM_SCOPE_GLOBAL_DTORS_PRESENT);
    {
        size_t bsize = 0;
        SETUP(clGetProgramInfo(prog, CL_PROGRAM_BINARY_SIZES, sizeof bsize, &bsize, NULL));
        unsigned char *bin = malloc(bsize);
        unsigned char *bins[] = {bin};
        cl_int rc = clGetProgramInfo(prog, CL_PROGRAM_BINARIES, sizeof bins, bins, NULL);
        size_t nonzero = 0;
        for (size_t i = 0; i < bsize; i++) nonzero += bin[i] != 0;
        printf("%-14s %-44s rc=%d filled=%s\n", "program", "CL_PROGRAM_BINARIES", rc,
               nonzero ? "yes" : "no");
        free(bin);
    }
    Q("program", I32, build_q, prog, d, CL_PROGRAM_BUILD_STATUS);
    Q("program", STR, build_q, prog, d, CL_PROGRAM_BUILD_OPTIONS);
    Q("program", RAW, build_q, prog, d, CL_PROGRAM_BUILD_LOG);
    Q("program", U32, build_q, prog, d, CL_PROGRAM_BINARY_TYPE);
    Q("program", SZ, build_q, prog, d, CL_PROGRAM_BUILD_GLOBAL_VARIABLE_TOTAL_SIZE);

    cl_kernel ks = clCreateKernel(prog, "scale", &err);
    SETUP(err);
    name_it("kernel scale", ks);
    cl_kernel kf = clCreateKernel(prog, "fixed", &err);
    SETUP(err);
    name_it("kernel fixed", kf);
    cl_kernel kernels[] = {ks, kf};
    const char *knames[] = {"kernel scale", "kernel fixed"};
    for (int i = 0; i < 2; i++) {
        cl_kernel k = kernels[i];
        const char *w = knames[i];
        Q(w, STR, kernel_q, k, NULL, CL_KERNEL_FUNCTION_NAME);
        Q(w, U32, kernel_q, k, NULL, CL_KERNEL_NUM_ARGS);
        Q(w, U32, kernel_q, k, NULL, CL_KERNEL_REFERENCE_COUNT);
        Q(w, HANDLE, kernel_q, k, NULL, CL_KERNEL_CONTEXT);
        Q(w, HANDLE, kernel_q, k, NULL, CL_KERNEL_PROGRAM);
        Q(w, STR, kernel_q, k, NULL, CL_KERNEL_ATTRIBUTES);
        cl_uint nargs = 0;
        SETUP(clGetKernelInfo(k, CL_KERNEL_NUM_ARGS, sizeof nargs, &nargs, NULL));
        for (arg_index = 0; arg_index < nargs; arg_index++) {
            char an[64];
            snprintf(an, sizeof an, "%s arg %u", i ? "fixed" : "scale", arg_index);
            Q(an, U32, arg_q, k, NULL, CL_KERNEL_ARG_ADDRESS_QUALIFIER);
            Q(an, U32, arg_q, k, NULL, CL_KERNEL_ARG_ACCESS_QUALIFIER);
            Q(an, STR, arg_q, k, NULL, CL_KERNEL_ARG_TYPE_NAME);
            Q(an, U64, arg_q, k, NULL, CL_KERNEL_ARG_TYPE_QUALIFIER);
            Q(an, STR, arg_q, k, NULL, CL_KERNEL_ARG_NAME);
        }
        Q(w, SZ, wg_q, k, d, CL_KERNEL_WORK_GROUP_SIZE);
        Q(w, SZ3, wg_q, k, d, CL_KERNEL_COMPILE_WORK_GROUP_SIZE);
        Q(w, U64, wg_q, k, d, CL_KERNEL_LOCAL_MEM_SIZE);
        Q(w, SZ, wg_q, k, d, CL_KERNEL_PREFERRED_WORK_GROUP_SIZE_MULTIPLE);
        Q(w, U64, wg_q, k, d, CL_KERNEL_PRIVATE_MEM_SIZE);
        Q(w, SZ3, wg_q, k, d, CL_KERNEL_GLOBAL_WORK_SIZE);
    }

    /* A launch's event: its info and profiling times. */
    float one = 1.0f;
    cl_mem cb = clCreateBuffer(ctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, sizeof one, &one, &err);
    SETUP(err);
    name_it("constant buffer", cb);
    cl_sampler_properties sp[] = {CL_SAMPLER_NORMALIZED_COORDS, CL_FALSE,
                                  CL_SAMPLER_ADDRESSING_MODE, CL_ADDRESS_CLAMP_TO_EDGE,
                                  CL_SAMPLER_FILTER_MODE, CL_FILTER_NEAREST, 0};
    cl_sampler smp = clCreateSamplerWithProperties(ctx, sp, &err);
    SETUP(err);
    float k2 = 2.0f;
    SETUP(clSetKernelArg(ks, 0, sizeof buf, &buf));
    SETUP(clSetKernelArg(ks, 1, sizeof cb, &cb));
    SETUP(clSetKernelArg(ks, 2, 16 * sizeof(float), NULL));
    SETUP(clSetKernelArg(ks, 3, sizeof k2, &k2));
    SETUP(clSetKernelArg(ks, 4, sizeof img2d, &img2d));
    SETUP(clSetKernelArg(ks, 5, sizeof smp, &smp));
    float zero = 0.5f;
    SETUP(clEnqueueFillBuffer(q, buf, &zero, sizeof zero, 0, 4096, 0, NULL, NULL));
    float texel[4] = {0.25f, 0, 0, 0};
    size_t o3[3] = {0, 0, 0}, r3[3] = {1, 1, 1};
    SETUP(clEnqueueWriteImage(q, img2d, CL_TRUE, o3, r3, 0, 0, texel, 0, NULL, NULL));
    size_t g = 256, l = 16;
    cl_event ev = NULL;
    SETUP(clEnqueueNDRangeKernel(q, ks, 1, NULL, &g, &l, 0, NULL, &ev));
    name_it("event", ev);
    SETUP(clWaitForEvents(1, &ev));
    Q("event", HANDLE, event_q, ev, NULL, CL_EVENT_COMMAND_QUEUE);
    Q("event", HANDLE, event_q, ev, NULL, CL_EVENT_CONTEXT);
    Q("event", U32, event_q, ev, NULL, CL_EVENT_COMMAND_TYPE);
    Q("event", I32, event_q, ev, NULL, CL_EVENT_COMMAND_EXECUTION_STATUS);
    Q("event", LIVE, event_q, ev, NULL, CL_EVENT_REFERENCE_COUNT);
    cl_profiling_info pinfo[] = {CL_PROFILING_COMMAND_QUEUED, CL_PROFILING_COMMAND_SUBMIT,
                                 CL_PROFILING_COMMAND_START, CL_PROFILING_COMMAND_END,
                                 CL_PROFILING_COMMAND_COMPLETE};
    const char *pname[] = {"CL_PROFILING_COMMAND_QUEUED", "CL_PROFILING_COMMAND_SUBMIT",
                           "CL_PROFILING_COMMAND_START", "CL_PROFILING_COMMAND_END",
                           "CL_PROFILING_COMMAND_COMPLETE"};
    cl_ulong prev = 0;
    for (int i = 0; i < 5; i++) {
        cl_ulong t = 0;
        size_t size = 0;
        cl_int rc = clGetEventProfilingInfo(ev, pinfo[i], sizeof t, &t, &size);
        printf("%-14s %-44s rc=%d size=%zu %s\n", "event", pname[i], rc, size,
               rc ? "" : (t != 0 && t >= prev ? "in order" : "OUT OF ORDER"));
        if (rc == CL_SUCCESS) prev = t;
    }
    float out[4];
    SETUP(clEnqueueReadBuffer(q, buf, CL_TRUE, 0, sizeof out, out, 0, NULL, NULL));
    printf("kernel result: %.2f %.2f\n", out[0], out[3]);
    SETUP(clReleaseEvent(ev));
    SETUP(clFinish(q));
    printf("done\n");
    return 0;
}
