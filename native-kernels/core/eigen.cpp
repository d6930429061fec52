#include "eigen.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "eigen_internal.h"
#include "thread_pool.h"

namespace ql {

namespace {

/**
 * From this size on, eigenvalues alone go through a band (eigen_band.cpp): all O(n³) work in
 * dgemm instead of matrix-vector products that stream the matrix from memory once per row.
 * Below it the trailing matrix fits in L3 and the one-stage reduction is as fast (measured on
 * 1 thread: equal at n = 2048, two-stage 1.7× faster at 3072, one-stage 1.6× at 1024).
 */
constexpr size_t kTwoStageMin = 2048;

/** Transposes in tiles of this size (both sides stay in L1). */
constexpr size_t kTransposeTile = 32;

/**
 * Matrices whose largest entry lies outside [kSafeMin, kSafeMax] are scaled into [0.5, 1) first,
 * so that norms and products neither overflow nor underflow (LAPACK dsyev's rmin/rmax ≈ 1e±146).
 * Inside that range they are left alone: scaling would push tiny entries into subnormals.
 */
constexpr double kSafeMin = 1e-140;
constexpr double kSafeMax = 1e140;

/**
 * The working copy: the lower triangle of `a` in double, times a power of two (exact) when its
 * largest entry is out of the safe range. The upper triangle is zeroed. Returns the scale.
 */
template <typename T>
double loadLower(const T* a, size_t n, double* w) {
  double amax = 0;
  for (size_t i = 0; i < n; i++) {
    const T* row = a + i * n;
    double rowMax = 0;
    bool finite = true;
    for (size_t j = 0; j <= i; j++) {
      const double v = std::fabs(static_cast<double>(row[j]));
      finite &= v <= DBL_MAX;  // false for NaN too
      rowMax = std::max(rowMax, v);
    }
    if (!finite) {
      for (size_t j = 0; j <= i; j++) {
        if (!std::isfinite(static_cast<double>(row[j]))) throw EigenNonFinite(i, j);
      }
    }
    amax = std::max(amax, rowMax);
  }
  double scale = 1;
  if (amax > 0 && (amax < kSafeMin || amax > kSafeMax)) {
    int exponent = 0;
    std::frexp(amax, &exponent);
    scale = std::ldexp(1.0, -exponent);
  }
  pool().parallelFor((n + 63) / 64, [&](size_t t) {
    for (size_t i = t * 64; i < std::min(n, (t + 1) * 64); i++) {
      const T* row = a + i * n;
      double* out = w + i * n;
      for (size_t j = 0; j <= i; j++) out[j] = static_cast<double>(row[j]) * scale;
      std::fill(out + i + 1, out + n, 0.0);
    }
  });
  return scale;
}

/** x[r·n + t] = z[r + order[t]·n]: the tridiagonal's vectors, sorted, from columns to row-major. */
void gatherSorted(const double* z, size_t n, const std::vector<size_t>& order, double* x) {
  const size_t tiles = (n + kTransposeTile - 1) / kTransposeTile;
  pool().parallelFor(tiles, [&](size_t tr) {
    const size_t r0 = tr * kTransposeTile, r1 = std::min(n, r0 + kTransposeTile);
    for (size_t t0 = 0; t0 < n; t0 += kTransposeTile) {
      const size_t t1 = std::min(n, t0 + kTransposeTile);
      for (size_t r = r0; r < r1; r++) {
        double* xr = x + r * n;
        for (size_t t = t0; t < t1; t++) xr[t] = z[r + order[t] * n];
      }
    }
  });
}

template <typename T>
void solve(const T* a, size_t n, const EigenOutput& out, const CancelFlag* cancel) {
  throwIfCancelled(cancel);
  if (n == 0) return;
  if (out.values == nullptr) throw std::invalid_argument("symmetricEigen: no output for the eigenvalues");
  if (out.vectors64 != nullptr && out.vectors32 != nullptr) {
    throw std::invalid_argument("symmetricEigen: ask for float or double eigenvectors, not both");
  }
  const bool wantVectors = out.vectors64 != nullptr || out.vectors32 != nullptr;
  std::unique_ptr<double[]> work(new double[n * n]);
  const double scale = loadLower(a, n, work.get());
  std::vector<double> d(n), e(n), tau(n);
  std::vector<size_t> order;
  if (!wantVectors) {
    if (n >= kTwoStageMin)
      eig::tridiagonalizeTwoStage(work.get(), n, n, d.data(), e.data(), cancel);
    else
      eig::tridiagonalize(work.get(), n, n, d.data(), e.data(), tau.data(), cancel);
    eig::tridiagonalEigen(d.data(), e.data(), n, nullptr, order, cancel);
  } else {
    eig::tridiagonalize(work.get(), n, n, d.data(), e.data(), tau.data(), cancel);
    std::unique_ptr<double[]> z(new double[n * n]);
    eig::tridiagonalEigen(d.data(), e.data(), n, z.get(), order, cancel);
    std::unique_ptr<double[]> temp;
    double* x = out.vectors64;
    if (x == nullptr) {
      temp.reset(new double[n * n]);
      x = temp.get();
    }
    gatherSorted(z.get(), n, order, x);
    z.reset();
    eig::applyQ(work.get(), n, n, tau.data(), x, n, cancel);
    if (out.vectors32 != nullptr) {
      float* v = out.vectors32;
      pool().parallelFor((n + 63) / 64, [&](size_t t) {
        const size_t begin = t * 64 * n, end = std::min(n, (t + 1) * 64) * n;
        for (size_t i = begin; i < end; i++) v[i] = static_cast<float>(x[i]);
      });
    }
  }
  for (size_t t = 0; t < n; t++) out.values[t] = d[order[t]] / scale;
}

}  // namespace

EigenNonFinite::EigenNonFinite(size_t r, size_t c)
    : std::invalid_argument("symmetricEigen: a[" + std::to_string(r) + "][" + std::to_string(c) +
                            "] is NaN or ±Inf; the matrix must be finite"),
      row(r),
      col(c) {}

void symmetricEigen(const float* a, size_t n, const EigenOutput& out, const CancelFlag* cancel) {
  solve(a, n, out, cancel);
}

void symmetricEigen(const double* a, size_t n, const EigenOutput& out, const CancelFlag* cancel) {
  solve(a, n, out, cancel);
}

}  // namespace ql
