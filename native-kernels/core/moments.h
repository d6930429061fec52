// Central moments of a float32 sample, as extension/src/engine/kernels/reference.ts defines them.
#pragma once

#include <cstddef>

#include "cancel.h"

namespace ql {

/**
 * `m2 = Σ(x−mean)²`, `m3 = Σ(x−mean)³`, `m4 = Σ(x−mean)⁴` over the finite values; NaN and ±Inf
 * are counted in `nonFinite` and skipped. With no finite value: mean = m2 = m3 = m4 = absmax = 0,
 * min = +Inf, max = −Inf (as `emptyMoments()`).
 */
struct Moments {
  double n = 0;
  double mean = 0;
  double m2 = 0;
  double m3 = 0;
  double m4 = 0;
  double absmax = 0;
  double min = 1.0 / 0.0;
  double max = -1.0 / 0.0;
  double nonFinite = 0;
};

/**
 * Elements per block. Each block is reduced on its own (the scalar kernel: two passes, mean then
 * central sums; the AVX2 one: one pass of power sums about a shift, moved to the mean exactly, and
 * a second pass only when the shift was poor), then blocks are combined by a pairwise tree of
 * Pébay merges. The block size and the tree shape are part of the contract: the TypeScript
 * fallback in kernels/index.ts uses the same ones, so it gives bit-identical results to the
 * scalar path here.
 */
constexpr size_t kMomentsBlock = 32768;

/** Pébay's pairwise update; the same operations, in the same order, as `mergeMoments`. */
Moments mergeMoments(const Moments& a, const Moments& b);

/** One block, two passes in double, operation for operation as `momentsRef`. */
Moments momentsBlockScalar(const float* x, size_t n);

/**
 * Moments of x[0..n): blocks spread over the thread pool, merged in a fixed order, so the result
 * does not depend on the thread count. Throws Cancelled when `cancel` is set before the end.
 */
Moments moments(const float* x, size_t n, const CancelFlag* cancel = nullptr);

}  // namespace ql
