// The dense-factor inner loop of orthogonal.cpp, written once and compiled twice: for baseline
// x86-64/arm64 in orthogonal.cpp, and inside an AVX2 function in orthogonal_x86.cpp (it is
// force-inlined into its caller, so it takes the caller's target). It works on a batch of w ≤ W
// vectors stored interleaved, buf[b·W + l] = element b of vector l, and every lane does the
// reflections' operations in the order orthogonal.h states: lanes are independent, so the SIMD
// width never changes a result bit.
#pragma once

#include <cstddef>

#if defined(_MSC_VER)
#define QL_ALWAYS_INLINE __forceinline
#else
#define QL_ALWAYS_INLINE inline __attribute__((always_inline))
#endif

namespace ql {

/**
 * Lanes per batch: 8 (two 4-wide double vectors), or 16 / 32 when a factor has enough vectors to
 * fill them. More lanes keep more independent add chains in flight in the dot products (each
 * lane's sum is a dependent chain), and never change a result bit.
 */
constexpr size_t kChainLanes = 8;
constexpr size_t kChainLanesMax = 32;

/** x ← H x with H = I − v·vᵀ on coordinates [k, k + len) of each lane. */
template <size_t W>
QL_ALWAYS_INLINE void reflectBatch(double* buf, const double* v, size_t k, size_t len) {
  double c[W];
  for (size_t l = 0; l < W; l++) c[l] = 0;
  double* x = buf + k * W;
  for (size_t i = 0; i < len; i++) {
    for (size_t l = 0; l < W; l++) c[l] = c[l] + v[i] * x[i * W + l];
  }
  for (size_t i = 0; i < len; i++) {
    for (size_t l = 0; l < W; l++) x[i * W + l] = x[i * W + l] - c[l] * v[i];
  }
}

/**
 * Q·x (forward) or Qᵀ·x (inverse) for all W lanes of buf (unused lanes hold zeros and cost the
 * same): Q = H_0·…·H_{d−2}·D, reflectors as stored in OrthoFactor.
 */
template <size_t W>
QL_ALWAYS_INLINE void chainBatch(double* buf, size_t d, const double* reflectors, const double* D, bool inverse) {
  // Offset of v_k in `reflectors`: Σ_{i<k} (d − i).
  const auto offset = [d](size_t k) { return k * d - k * (k - 1) / 2; };
  if (!inverse) {
    for (size_t b = 0; b < d; b++)
      for (size_t l = 0; l < W; l++) buf[b * W + l] = buf[b * W + l] * D[b];
    for (size_t k = d - 1; k-- > 0;) reflectBatch<W>(buf, reflectors + offset(k), k, d - k);
  } else {
    for (size_t k = 0; k + 1 < d; k++) reflectBatch<W>(buf, reflectors + offset(k), k, d - k);
    for (size_t b = 0; b < d; b++)
      for (size_t l = 0; l < W; l++) buf[b * W + l] = buf[b * W + l] * D[b];
  }
}

/** The chain of one batch width, as the dispatch in orthogonal.cpp holds it. */
using ChainFn = void (*)(double* buf, size_t d, const double* reflectors, const double* D, bool inverse);

}  // namespace ql
