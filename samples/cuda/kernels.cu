// Kernels the CUDA samples and the CUDA stand-in's tests launch. Compiled to
// kernels.ptx by scripts/cuda-fixtures.sh (NVRTC, no GPU needed); the PTX is
// committed. Names avoid PTX opcodes (`add`, `vadd`, ...), which the PTX
// lexer of the stand-in would read as instructions.

// c[i] = a[i] + b[i]
extern "C" __global__ void vector_add(const float *a, const float *b, float *c, unsigned int n)
{
    unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        c[i] = a[i] + b[i];
    }
}

// y[i] = alpha * x[i] + y[i]
extern "C" __global__ void saxpy(float alpha, const float *x, float *y, unsigned int n)
{
    unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        y[i] = alpha * x[i] + y[i];
    }
}

// x[i] = x[i] * factor
extern "C" __global__ void scale_inplace(float *x, float factor, unsigned int n)
{
    unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        x[i] = x[i] * factor;
    }
}

// Does nothing: launch overhead.
extern "C" __global__ void empty()
{
}

// Stores through a wild pointer far past any allocation: an illegal address.
extern "C" __global__ void fault(unsigned int *p)
{
    p[0x10000000] = 0xdeadbeef;
}

// out[y * width + x] = in[x * height + y]: a 2D grid of 2D blocks.
extern "C" __global__ void transpose_2d(const float *in, float *out, unsigned int width, unsigned int height)
{
    unsigned int x = blockIdx.x * blockDim.x + threadIdx.x;
    unsigned int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x < width && y < height) {
        out[y * width + x] = in[x * height + y];
    }
}
