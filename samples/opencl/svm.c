/*
 * Shared virtual memory (OpenCL 2.0 SVM): allocations whose pointers mean
 * the same bytes to the program and to kernels, inside data too.
 *
 * - A linked list built by the host in SVM memory (each node holds the SVM
 *   pointer of the next) is walked by a kernel, which writes the sum of
 *   the values into another SVM allocation; the host reads it after a map.
 * - A kernel follows pointers stored in an SVM table
 *   (clSetKernelExecInfo(CL_KERNEL_EXEC_INFO_SVM_PTRS)).
 * - clEnqueueSVMMemcpy between SVM allocations and from and to the
 *   program's own memory, clEnqueueSVMMemFill, clEnqueueSVMMap/Unmap,
 *   clEnqueueSVMMigrateMem and clEnqueueSVMFree with a callback.
 * - Invalid calls and their errors.
 *
 * Every line printed is a result the device computed or an error code, the
 * same natively and remoted.
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

static const char *src =
    "typedef struct node { global struct node *next; int value; } node;\n"
    "kernel void walk(global node *head, global int *out) {\n"
    "    int sum = 0; int n = 0;\n"
    "    for (global node *p = head; p; p = p->next) { sum += p->value; n++; }\n"
    "    out[0] = sum; out[1] = n;\n"
    "}\n"
    "kernel void gather(global int * global *table, global int *out) {\n"
    "    size_t i = get_global_id(0);\n"
    "    out[i] = *table[i] * 10;\n"
    "}\n"
    "kernel void twice(global int *p) { size_t i = get_global_id(0); p[i] *= 2; }\n";

typedef struct node {
    struct node *next;
    int value;
} node;

static int freed_by_callback = 0;
static void CL_CALLBACK free_them(cl_command_queue q, cl_uint n, void **ptrs, void *user) {
    (void)q;
    cl_context ctx = (cl_context)user;
    for (cl_uint i = 0; i < n; i++) clSVMFree(ctx, ptrs[i]);
    freed_by_callback += (int)n;
}

int main(void) {
    cl_platform_id platform;
    cl_device_id device;
    cl_int err;
    CHECK(clGetPlatformIDs(1, &platform, NULL));
    CHECK(clGetDeviceIDs(platform, CL_DEVICE_TYPE_ALL, 1, &device, NULL));
    cl_device_svm_capabilities caps = 0;
    CHECK(clGetDeviceInfo(device, CL_DEVICE_SVM_CAPABILITIES, sizeof caps, &caps, NULL));
    printf("device SVM: coarse %s, fine-grained buffer %s\n",
           caps & CL_DEVICE_SVM_COARSE_GRAIN_BUFFER ? "yes" : "no",
           caps & CL_DEVICE_SVM_FINE_GRAIN_BUFFER ? "yes" : "no");
    if (!(caps & CL_DEVICE_SVM_COARSE_GRAIN_BUFFER)) {
        printf("no SVM: nothing to do\n");
        return 0;
    }
    cl_context ctx = clCreateContext(NULL, 1, &device, NULL, NULL, &err);
    CHECK(err);
    cl_command_queue q = clCreateCommandQueueWithProperties(ctx, device, NULL, &err);
    CHECK(err);
    cl_program prog = clCreateProgramWithSource(ctx, 1, &src, NULL, &err);
    CHECK(err);
    CHECK(clBuildProgram(prog, 1, &device, "-cl-std=CL2.0", NULL, NULL));
    cl_kernel walk = clCreateKernel(prog, "walk", &err);
    CHECK(err);
    cl_kernel gather = clCreateKernel(prog, "gather", &err);
    CHECK(err);
    cl_kernel twice = clCreateKernel(prog, "twice", &err);
    CHECK(err);

    /* 1. A linked list in SVM, built by the host, walked by a kernel. */
    enum { N = 100 };
    node *nodes[N];
    for (int i = 0; i < N; i++) {
        nodes[i] = clSVMAlloc(ctx, CL_MEM_READ_WRITE, sizeof(node), 0);
        if (!nodes[i]) {
            printf("clSVMAlloc failed\n");
            return 1;
        }
    }
    for (int i = 0; i < N; i++) {
        CHECK(clEnqueueSVMMap(q, CL_TRUE, CL_MAP_WRITE, nodes[i], sizeof(node), 0, NULL, NULL));
        nodes[i]->value = i + 1;
        nodes[i]->next = i + 1 < N ? nodes[i + 1] : NULL;
        CHECK(clEnqueueSVMUnmap(q, nodes[i], 0, NULL, NULL));
    }
    int *out = clSVMAlloc(ctx, CL_MEM_READ_WRITE, 64 * sizeof(int), 0);
    CHECK(clSetKernelArgSVMPointer(walk, 0, nodes[0]));
    CHECK(clSetKernelArgSVMPointer(walk, 1, out));
    /* The kernel reaches the other nodes through the first. */
    CHECK(clSetKernelExecInfo(walk, CL_KERNEL_EXEC_INFO_SVM_PTRS, sizeof nodes, nodes));
    size_t one = 1;
    CHECK(clEnqueueNDRangeKernel(q, walk, 1, NULL, &one, NULL, 0, NULL, NULL));
    CHECK(clEnqueueSVMMap(q, CL_TRUE, CL_MAP_READ, out, 2 * sizeof(int), 0, NULL, NULL));
    printf("list walked by a kernel: %d nodes, sum %d\n", out[1], out[0]);
    CHECK(clEnqueueSVMUnmap(q, out, 0, NULL, NULL));

    /* 2. A table of SVM pointers. */
    int **table = clSVMAlloc(ctx, CL_MEM_READ_WRITE, 8 * sizeof(int *), 0);
    int *values = clSVMAlloc(ctx, CL_MEM_READ_WRITE, 8 * sizeof(int), 0);
    CHECK(clEnqueueSVMMap(q, CL_TRUE, CL_MAP_WRITE, table, 8 * sizeof(int *), 0, NULL, NULL));
    CHECK(clEnqueueSVMMap(q, CL_TRUE, CL_MAP_WRITE, values, 8 * sizeof(int), 0, NULL, NULL));
    for (int i = 0; i < 8; i++) {
        values[i] = 7 * i + 1;
        table[i] = &values[7 - i];
    }
    CHECK(clEnqueueSVMUnmap(q, table, 0, NULL, NULL));
    CHECK(clEnqueueSVMUnmap(q, values, 0, NULL, NULL));
    void *reached[] = {values};
    CHECK(clSetKernelExecInfo(gather, CL_KERNEL_EXEC_INFO_SVM_PTRS, sizeof reached, reached));
    CHECK(clSetKernelArgSVMPointer(gather, 0, table));
    CHECK(clSetKernelArgSVMPointer(gather, 1, out + 8));
    size_t eight = 8;
    CHECK(clEnqueueNDRangeKernel(q, gather, 1, NULL, &eight, NULL, 0, NULL, NULL));
    int host[16];
    cl_event copied;
    CHECK(clEnqueueSVMMemcpy(q, CL_TRUE, host, out + 8, 8 * sizeof(int), 0, NULL, &copied));
    printf("gathered through a pointer table:");
    for (int i = 0; i < 8; i++) printf(" %d", host[i]);
    printf("\n");
    cl_int status = 0;
    cl_command_type type = 0;
    CHECK(clGetEventInfo(copied, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof status, &status, NULL));
    CHECK(clGetEventInfo(copied, CL_EVENT_COMMAND_TYPE, sizeof type, &type, NULL));
    printf("copy to the program's memory: event status %d, command type %#x\n", status, type);
    CHECK(clReleaseEvent(copied));

    /* 3. Copies, fills, a kernel on a filled range. */
    int *a = clSVMAlloc(ctx, CL_MEM_READ_WRITE, 1024 * sizeof(int), 64);
    int *b = clSVMAlloc(ctx, CL_MEM_READ_WRITE, 1024 * sizeof(int), 0);
    printf("alignment 64 honoured: %s\n", ((size_t)a % 64) == 0 ? "yes" : "no");
    int pattern = 3;
    CHECK(clEnqueueSVMMemFill(q, a, &pattern, sizeof pattern, 1024 * sizeof(int), 0, NULL, NULL));
    size_t n1024 = 1024;
    CHECK(clSetKernelArgSVMPointer(twice, 0, a));
    CHECK(clEnqueueNDRangeKernel(q, twice, 1, NULL, &n1024, NULL, 0, NULL, NULL));
    CHECK(clEnqueueSVMMemcpy(q, CL_FALSE, b, a, 1024 * sizeof(int), 0, NULL, NULL));
    for (int i = 0; i < 16; i++) host[i] = 100 + i;
    CHECK(clEnqueueSVMMemcpy(q, CL_TRUE, b + 512, host, 16 * sizeof(int), 0, NULL, NULL));
    CHECK(clFinish(q));
    CHECK(clEnqueueSVMMap(q, CL_TRUE, CL_MAP_READ, b, 1024 * sizeof(int), 0, NULL, NULL));
    long sum = 0;
    for (int i = 0; i < 1024; i++) sum += b[i];
    printf("fill, kernel, copy, copy in: b[0]=%d b[512]=%d b[527]=%d sum %ld\n", b[0], b[512],
           b[527], sum);
    CHECK(clEnqueueSVMUnmap(q, b, 0, NULL, NULL));
    const void *mig[] = {a, b};
    size_t sizes[] = {16, 0};
    CHECK(clEnqueueSVMMigrateMem(q, 2, mig, sizes, 0, 0, NULL, NULL));
    CHECK(clFinish(q));

    /* 4. Errors. */
    printf("clSVMAlloc of 0 bytes: %s\n", clSVMAlloc(ctx, CL_MEM_READ_WRITE, 0, 0) ? "a pointer" : "NULL");
    printf("clSVMAlloc with alignment 3: %s\n",
           clSVMAlloc(ctx, CL_MEM_READ_WRITE, 64, 3) ? "a pointer" : "NULL");
    printf("clSVMAlloc read-only and write-only: %s\n",
           clSVMAlloc(ctx, CL_MEM_READ_ONLY | CL_MEM_WRITE_ONLY, 64, 0) ? "a pointer" : "NULL");
    printf("clEnqueueSVMMemcpy with a NULL source: %d\n",
           clEnqueueSVMMemcpy(q, CL_TRUE, a, NULL, 4, 0, NULL, NULL));
    printf("clEnqueueSVMMemcpy overlapping: %d\n",
           clEnqueueSVMMemcpy(q, CL_TRUE, a + 1, a, 16, 0, NULL, NULL));
    printf("clEnqueueSVMMemFill of NULL: %d\n",
           clEnqueueSVMMemFill(q, NULL, &pattern, sizeof pattern, 16, 0, NULL, NULL));
    printf("clEnqueueSVMFree of no pointers: %d\n",
           clEnqueueSVMFree(q, 0, NULL, NULL, NULL, 0, NULL, NULL));
    printf("clSetKernelExecInfo of an unknown name: %d\n",
           clSetKernelExecInfo(walk, 0x4242, sizeof(int), &pattern));

    /* 5. Frees: by callback after the queue's work, and directly. */
    void *to_free[] = {a, b};
    cl_event freed;
    CHECK(clEnqueueSVMFree(q, 2, to_free, free_them, ctx, 0, NULL, &freed));
    CHECK(clWaitForEvents(1, &freed));
    CHECK(clGetEventInfo(freed, CL_EVENT_COMMAND_TYPE, sizeof type, &type, NULL));
    printf("clEnqueueSVMFree: event command type %#x\n", type);
    CHECK(clReleaseEvent(freed));
    printf("freed by the callback: %d\n", freed_by_callback);
    for (int i = 0; i < N; i++) clSVMFree(ctx, nodes[i]);
    clSVMFree(ctx, out);
    clSVMFree(ctx, table);
    clSVMFree(ctx, values);
    /* Room again for a large allocation after the frees. */
    void *again = clSVMAlloc(ctx, CL_MEM_READ_WRITE | CL_MEM_SVM_FINE_GRAIN_BUFFER, 1 << 20, 0);
    printf("fine-grained allocation after the frees: %s\n", again ? "ok" : "NULL");
    if (again) {
        memset(again, 1, 1 << 20); /* fine-grained: no map needed */
        clSVMFree(ctx, again);
    }
    CHECK(clFinish(q));
    clReleaseKernel(walk);
    clReleaseKernel(gather);
    clReleaseKernel(twice);
    clReleaseProgram(prog);
    clReleaseCommandQueue(q);
    clReleaseContext(ctx);
    printf("done\n");
    return 0;
}
