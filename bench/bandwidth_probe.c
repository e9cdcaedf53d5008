/* Streaming-read bandwidth probe for bench/bench_linear.py.
 *
 *   bandwidth_probe BYTES THREADS ITERATIONS   → prints "GB/s <median>"
 *
 * Sums a float buffer of BYTES with 16 independent accumulators (vectorized
 * by the compiler), split over THREADS OpenMP threads, ITERATIONS times after
 * one warm-up pass; the buffer stays the same, so a buffer that fits in the
 * last-level cache is read from it, as a kernel's weights are when it is
 * called again and again. Build: cc -O3 -march=native -ffast-math -fopenmp.
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: bandwidth_probe BYTES THREADS ITERATIONS\n");
    return 1;
  }
  size_t n = (size_t)atoll(argv[1]) / sizeof(float);
  int threads = atoi(argv[2]), iterations = atoi(argv[3]);
  n -= n % 64;
  float *a = aligned_alloc(64, n * sizeof(float));
  if (!a || n == 0 || threads < 1 || iterations < 1)
    return 1;
  for (size_t i = 0; i < n; ++i)
    a[i] = (float)(i & 7);
  omp_set_num_threads(threads);
  double *times = malloc(sizeof(double) * iterations);
  volatile float sink = 0;
  for (int it = -1; it < iterations; ++it) {
    double t0 = now();
    float total = 0;
#pragma omp parallel for reduction(+ : total) schedule(static)
    for (size_t blk = 0; blk < n / 64; ++blk) {
      float acc[16] = {0};
      for (int j = 0; j < 64; j += 16)
        for (int l = 0; l < 16; ++l)
          acc[l] += a[blk * 64 + j + l];
      float s = 0;
      for (int l = 0; l < 16; ++l)
        s += acc[l];
      total += s;
    }
    sink += total;
    if (it >= 0)
      times[it] = now() - t0;
  }
  qsort(times, iterations, sizeof(double), cmp);
  printf("GB/s %.2f\n", n * sizeof(float) / times[iterations / 2] / 1e9);
  return 0;
}
