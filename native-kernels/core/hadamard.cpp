#include "hadamard.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <cmath>
#include <stdexcept>
#include <string>

#include "cpu.h"
#include "cuda_backend.h"
#include "kernels_x86.h"
#include "thread_pool.h"

namespace ql {

namespace {

// Rows per pool task: about this many floats of work each (a 4096-row FWHT is ~10 us on AVX2).
constexpr size_t kTaskElements = size_t{1} << 16;

}  // namespace

size_t findNonFiniteFloat(const float* x, size_t n) {
  // Branch-free OR over blocks (vectorizes), then locate inside the first bad block.
  constexpr size_t kBlock = 256;
  for (size_t begin = 0; begin < n; begin += kBlock) {
    const size_t end = std::min(n, begin + kBlock);
    uint32_t bad = 0;
    for (size_t i = begin; i < end; i++) {
      uint32_t bits;
      std::memcpy(&bits, x + i, 4);
      bad |= static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
    }
    if (bad)
      for (size_t i = begin; i < end; i++)
        if (!std::isfinite(x[i])) return i;
  }
  return n;
}

float fwhtNorm(size_t n) { return static_cast<float>(1.0 / std::sqrt(static_cast<double>(n))); }

void fwhtRowScalar(float* x, size_t n, float norm) {
  for (size_t h = 1; h < n; h *= 2) {
    for (size_t i = 0; i < n; i += 2 * h) {
      for (size_t j = i; j < i + h; j++) {
        const float a = x[j], b = x[j + h];
        x[j] = a + b;
        x[j + h] = a - b;
      }
    }
  }
  for (size_t i = 0; i < n; i++) x[i] *= norm;
}

void fwhtRow(float* x, size_t n, float norm) {
#if QL_X86_SIMD
  if (n >= 8 && useAvx2Fma()) return fwhtRowAvx2(x, n, norm);
#endif
  fwhtRowScalar(x, n, norm);
}

void fwhtColumns(float* x, size_t d, size_t inner, float norm) {
  if (inner == 1) return fwhtRow(x, d, norm);
  // Element-wise loops over whole vectors; the compiler vectorizes them (exact: no reordering).
  for (size_t h = 1; h < d; h *= 2) {
    for (size_t i = 0; i < d; i += 2 * h) {
      for (size_t b = i; b < i + h; b++) {
        float* p = x + b * inner;
        float* q = x + (b + h) * inner;
        for (size_t j = 0; j < inner; j++) {
          const float a = p[j], c = q[j];
          p[j] = a + c;
          q[j] = a - c;
        }
      }
    }
  }
  for (size_t i = 0; i < d * inner; i++) x[i] *= norm;
}

void fwht(float* X, size_t rows, size_t n, const CancelFlag* cancel) {
  if (!isPowerOfTwo(n)) throw std::invalid_argument("fwht: n must be a power of two, got " + std::to_string(n));
  throwIfCancelled(cancel);
  if (rows == 0) return;
  // Optional CUDA backend: bit-identical; only worth it over very few CPU cores (cuda_backend.h).
  // False (no device, NaN/±Inf in X, an error) leaves X untouched for the CPU path below.
  if (cuda::worthFwht(rows, n, pool().threads()) && cuda::fwht(X, rows, n, cancel)) return;
  const float norm = fwhtNorm(n);
  const size_t rowsPerTask = std::max<size_t>(1, kTaskElements / n);
  const size_t tasks = (rows + rowsPerTask - 1) / rowsPerTask;
  const auto run = [&](size_t t) {
    if (isCancelled(cancel)) return;
    const size_t end = std::min(rows, (t + 1) * rowsPerTask);
    for (size_t r = t * rowsPerTask; r < end; r++) {
      float* x = X + r * n;
      const size_t bad = findNonFiniteFloat(x, n);
      if (bad < n)
        throw std::domain_error("fwht: X[" + std::to_string(r) + ", " + std::to_string(bad) + "] is " +
                                (std::isnan(x[bad]) ? "NaN" : "infinite") + "; transform finite values only");
      fwhtRow(x, n, norm);
    }
  };
  if (tasks == 1) {
    run(0);
  } else {
    pool().parallelFor(tasks, run);
  }
  throwIfCancelled(cancel);
}

}  // namespace ql
