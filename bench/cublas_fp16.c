// The GPU baselines of bench/bench_linear.py, measured in the same run as
// qforge's modules: cuBLAS FP16 GEMM (f16 inputs, f32 accumulation, the shape
// of a linear layer y[M,N] = x[M,K] · W[N,K]ᵀ) and a device-to-device copy,
// whose read + write rate is the reachable memory bandwidth. The CUDA driver
// and cuBLAS are opened with dlopen, so this builds with a plain C compiler and
// no CUDA headers:
//
//   cc -O2 bench/cublas_fp16.c -o cublas_fp16 -ldl
//   cublas_fp16 gemm M K N ITERATIONS    prints "median_ms X"
//   cublas_fp16 copy BYTES ITERATIONS    prints "median_ms X gbs Y" (bytes read
//   + written)
//
// Times are CUDA events around each call after 3 warm-up calls; the median is
// printed.
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int CUresult;
typedef unsigned long long CUdeviceptr;
typedef void *CUcontext, *CUevent, *CUstream;
typedef int cublasStatus_t;
typedef void *cublasHandle_t;

static CUresult (*cuInit)(unsigned);
static CUresult (*cuDeviceGet)(int *, int);
static CUresult (*cuDevicePrimaryCtxRetain)(CUcontext *, int);
static CUresult (*cuCtxSetCurrent)(CUcontext);
static CUresult (*cuCtxSynchronize)(void);
static CUresult (*cuMemAlloc_v2)(CUdeviceptr *, size_t);
static CUresult (*cuMemsetD16_v2)(CUdeviceptr, unsigned short, size_t);
static CUresult (*cuMemcpyDtoD_v2)(CUdeviceptr, CUdeviceptr, size_t);
static CUresult (*cuEventCreate)(CUevent *, unsigned);
static CUresult (*cuEventRecord)(CUevent, CUstream);
static CUresult (*cuEventSynchronize)(CUevent);
static CUresult (*cuEventElapsedTime)(float *, CUevent, CUevent);
static cublasStatus_t (*cublasCreate_v2)(cublasHandle_t *);
static cublasStatus_t (*cublasGemmEx)(cublasHandle_t, int, int, int, int, int,
                                      const void *, const void *, int, int,
                                      const void *, int, int, const void *,
                                      void *, int, int, int, int);

enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 };
enum { CUDA_R_32F = 0, CUDA_R_16F = 2 };
enum { CUBLAS_COMPUTE_32F = 68, CUBLAS_GEMM_DEFAULT = -1 };

static void fail(const char *what, int code) {
  fprintf(stderr, "cublas_fp16: %s failed (%d)\n", what, code);
  exit(1);
}
#define CHECK(call)                                                            \
  do {                                                                         \
    int rc_ = (call);                                                          \
    if (rc_ != 0)                                                              \
      fail(#call, rc_);                                                        \
  } while (0)

static void *open_first(const char *const *names) {
  for (; *names; ++names) {
    void *h = dlopen(*names, RTLD_NOW | RTLD_GLOBAL);
    if (h)
      return h;
  }
  return NULL;
}

static void *need(void *lib, const char *name) {
  void *p = dlsym(lib, name);
  if (!p) {
    fprintf(stderr, "cublas_fp16: %s not found\n", name);
    exit(1);
  }
  return p;
}
#define LOAD(lib, name) *(void **)(&name) = need(lib, #name)

static int compare(const void *a, const void *b) {
  float x = *(const float *)a, y = *(const float *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  int gemm = argc == 6 && !strcmp(argv[1], "gemm");
  int copy = argc == 4 && !strcmp(argv[1], "copy");
  if (!gemm && !copy) {
    fprintf(stderr, "usage: cublas_fp16 gemm M K N ITERATIONS | copy BYTES "
                    "ITERATIONS\n");
    return 2;
  }
  static const char *const cudaNames[] = {"libcuda.so.1", NULL};
  static const char *const cublasNames[] = {
      "libcublas.so.13", "libcublas.so.12", "libcublas.so",
      "/usr/local/cuda/lib64/libcublas.so", NULL};
  void *cuda = open_first(cudaNames);
  if (!cuda) {
    fprintf(stderr, "cublas_fp16: no CUDA driver (libcuda.so.1)\n");
    return 1;
  }
  LOAD(cuda, cuInit);
  LOAD(cuda, cuDeviceGet);
  LOAD(cuda, cuDevicePrimaryCtxRetain);
  LOAD(cuda, cuCtxSetCurrent);
  LOAD(cuda, cuCtxSynchronize);
  LOAD(cuda, cuMemAlloc_v2);
  LOAD(cuda, cuMemsetD16_v2);
  LOAD(cuda, cuMemcpyDtoD_v2);
  LOAD(cuda, cuEventCreate);
  LOAD(cuda, cuEventRecord);
  LOAD(cuda, cuEventSynchronize);
  LOAD(cuda, cuEventElapsedTime);
  int device;
  CUcontext context;
  CHECK(cuInit(0));
  CHECK(cuDeviceGet(&device, 0));
  CHECK(cuDevicePrimaryCtxRetain(&context, device));
  CHECK(cuCtxSetCurrent(context));

  cublasHandle_t handle = NULL;
  long m = 0, k = 0, n = 0, bytes = 0;
  int iterations;
  CUdeviceptr x = 0, w = 0, y = 0;
  if (gemm) {
    void *cublas = open_first(cublasNames);
    if (!cublas) {
      fprintf(stderr, "cublas_fp16: cuBLAS not found (libcublas.so)\n");
      return 1;
    }
    LOAD(cublas, cublasCreate_v2);
    LOAD(cublas, cublasGemmEx);
    CHECK(cublasCreate_v2(&handle));
    m = atol(argv[2]);
    k = atol(argv[3]);
    n = atol(argv[4]);
    iterations = atoi(argv[5]);
    CHECK(cuMemAlloc_v2(&x, (size_t)(m * k * 2)));
    CHECK(cuMemAlloc_v2(&w, (size_t)(n * k * 2)));
    CHECK(cuMemAlloc_v2(&y, (size_t)(m * n * 2)));
    // 0x3c00 is 1.0 in f16; 0x2000 is about 0.0078 (no overflow over any K).
    CHECK(cuMemsetD16_v2(x, 0x3c00, (size_t)(m * k)));
    CHECK(cuMemsetD16_v2(w, 0x2000, (size_t)(n * k)));
  } else {
    bytes = atol(argv[2]);
    iterations = atoi(argv[3]);
    CHECK(cuMemAlloc_v2(&x, (size_t)bytes));
    CHECK(cuMemAlloc_v2(&y, (size_t)bytes));
    CHECK(cuMemsetD16_v2(x, 0, (size_t)bytes / 2));
  }
  if (iterations < 1)
    iterations = 1;
  CUevent start, stop;
  CHECK(cuEventCreate(&start, 0));
  CHECK(cuEventCreate(&stop, 0));
  float *times = calloc((size_t)iterations, sizeof(float));
  const float alpha = 1.0f, beta = 0.0f;
  for (int i = -3; i < iterations; ++i) {
    CHECK(cuEventRecord(start, NULL));
    if (gemm)
      // Column-major: yᵀ[N,M] = W[N,K] · xᵀ[K,M], with W stored row-major
      // [N,K].
      CHECK(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, (int)n, (int)m,
                         (int)k, &alpha, (const void *)(uintptr_t)w, CUDA_R_16F,
                         (int)k, (const void *)(uintptr_t)x, CUDA_R_16F, (int)k,
                         &beta, (void *)(uintptr_t)y, CUDA_R_16F, (int)n,
                         CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    else
      CHECK(cuMemcpyDtoD_v2(y, x, (size_t)bytes));
    CHECK(cuEventRecord(stop, NULL));
    CHECK(cuEventSynchronize(stop));
    float ms;
    CHECK(cuEventElapsedTime(&ms, start, stop));
    if (i >= 0)
      times[i] = ms;
  }
  CHECK(cuCtxSynchronize());
  qsort(times, (size_t)iterations, sizeof(float), compare);
  float median = times[iterations / 2];
  if (gemm)
    printf("median_ms %.4f\n", median);
  else
    printf("median_ms %.4f gbs %.1f\n", median, 2.0 * bytes / median / 1e6);
  free(times);
  return 0;
}
