#include "orthogonal.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "cpu.h"
#include "hadamard.h"
#include "kernels_x86.h"
#include "orthogonal_kernels.h"
#include "orthogonal_rng.h"
#include "thread_pool.h"

namespace ql {

namespace {

constexpr size_t kTaskElements = size_t{1} << 16;

/** The largest divisor of m that is ≤ √m (1 when m is prime or 1). */
size_t balancedDivisor(size_t m) {
  size_t best = 1;
  for (size_t p = 2; p * p <= m; p++)
    if (m % p == 0) best = p;
  return best;
}

using Plan = std::vector<std::pair<OrthoFactor::Type, size_t>>;

void denseSplit(size_t m, size_t n, Plan& plan) {
  if (m <= kMaxDenseFactor) {
    plan.emplace_back(OrthoFactor::Type::Dense, m);
    return;
  }
  const size_t p = balancedDivisor(m);
  if (p == 1)
    throw std::invalid_argument("orthogonal transform: n = " + std::to_string(n) + " has the prime factor " +
                                std::to_string(m) + " > " + std::to_string(kMaxDenseFactor) +
                                ": no orthogonal transform of that size (pad the dimension)");
  denseSplit(p, n, plan);
  denseSplit(m / p, n, plan);
}

OrthoFactor drawHadamard(size_t d, OrthoRng& rng) {
  OrthoFactor f{OrthoFactor::Type::Hadamard, d, {}, {}, {}};
  f.signs.resize(d);
  for (size_t i = 0; i < d; i++) f.signs[i] = (rng.next() >> 31) != 0 ? -1.0f : 1.0f;
  return f;
}

OrthoFactor drawDense(size_t d, OrthoRng& rng) {
  OrthoFactor f{OrthoFactor::Type::Dense, d, {}, {}, {}};
  f.reflectors.reserve(d * (d + 1) / 2);
  f.d.resize(d);
  std::vector<double> x(d);
  for (size_t k = 0; k + 1 < d; k++) {
    const size_t len = d - k;
    double ss = 0;
    for (size_t i = 0; i < len; i++) {
      x[i] = rng.gaussian();
      ss = ss + x[i] * x[i];
    }
    // Householder vector of x: v = x + sign(x_0)·‖x‖·e_0 sends x to −sign(x_0)·‖x‖·e_0, so the
    // QR's R_kk has sign −sign(x_0) and D_k (which makes it positive) is −sign(x_0).
    const double sign = x[0] >= 0 ? 1.0 : -1.0;
    x[0] = x[0] + sign * std::sqrt(ss);
    double vv = 0;
    for (size_t i = 0; i < len; i++) vv = vv + x[i] * x[i];
    if (vv == 0) {  // cannot happen with a continuous draw; keep Q orthogonal anyway
      x[0] = std::sqrt(2.0);
    } else {
      const double scale = std::sqrt(2 / vv);
      for (size_t i = 0; i < len; i++) x[i] = x[i] * scale;
    }
    f.reflectors.insert(f.reflectors.end(), x.begin(), x.begin() + len);
    f.d[k] = -sign;
  }
  f.d[d - 1] = rng.gaussian() >= 0 ? 1.0 : -1.0;
  return f;
}

/** block[b, j] *= s[b] for a [d × inner] block (exact: s = ±1). */
void applySigns(float* block, const float* s, size_t d, size_t inner) {
  if (inner == 1) {
    for (size_t b = 0; b < d; b++) block[b] *= s[b];  // one flat loop (vectorizes)
    return;
  }
  for (size_t b = 0; b < d; b++)
    for (size_t j = 0; j < inner; j++) block[b * inner + j] *= s[b];
}

void hadamardFactor(const OrthoFactor& f, float* x, size_t outer, size_t inner, bool inverse) {
  const size_t d = f.size;
  const float norm = fwhtNorm(d);
  for (size_t o = 0; o < outer; o++) {
    float* block = x + o * d * inner;
    if (!inverse) applySigns(block, f.signs.data(), d, inner);
    fwhtColumns(block, d, inner, norm);
    if (inverse) applySigns(block, f.signs.data(), d, inner);
  }
}

template <size_t W>
void chainBatchScalar(double* buf, size_t d, const double* reflectors, const double* D, bool inverse) {
  chainBatch<W>(buf, d, reflectors, D, inverse);
}

/**
 * The widest batch (32, 16 or 8 lanes) whose padding wastes at most an eighth of the lanes the
 * `vectors` of one factor over a task's rows need; 8 below that.
 */
size_t chainLanes(size_t vectors) {
  for (size_t W : {size_t{32}, size_t{16}}) {
    const size_t padded = (vectors + W - 1) / W * W;
    if (8 * (padded - vectors) <= vectors) return W;
  }
  return kChainLanes;
}

ChainFn chainFor(size_t W) {
#if QL_X86_SIMD
  if (useAvx2Fma()) return W == 32 ? orthoChainAvx2x32 : W == 16 ? orthoChainAvx2x16 : orthoChainAvx2x8;
#endif
  return W == 32 ? chainBatchScalar<32> : W == 16 ? chainBatchScalar<16> : chainBatchScalar<8>;
}

void denseFactor(const OrthoFactor& f, float* x, size_t outer, size_t inner, bool inverse, double* buf) {
  const size_t d = f.size, vectors = outer * inner;
  const size_t W = chainLanes(vectors);
  const ChainFn chain = chainFor(W);
  // Vector t (t = o·inner + j) has element b at x[o·d·inner + b·inner + j].
  for (size_t t0 = 0; t0 < vectors; t0 += W) {
    const size_t w = std::min(W, vectors - t0);
    size_t base[kChainLanesMax];
    for (size_t l = 0; l < w; l++) base[l] = ((t0 + l) / inner) * d * inner + (t0 + l) % inner;
    for (size_t b = 0; b < d; b++) {
      for (size_t l = 0; l < w; l++) buf[b * W + l] = x[base[l] + b * inner];
      for (size_t l = w; l < W; l++) buf[b * W + l] = 0;
    }
    chain(buf, d, f.reflectors.data(), f.d.data(), inverse);
    for (size_t b = 0; b < d; b++)
      for (size_t l = 0; l < w; l++) x[base[l] + b * inner] = static_cast<float>(buf[b * W + l]);
  }
}

}  // namespace

std::vector<std::pair<OrthoFactor::Type, size_t>> orthoPlan(size_t n, OrthoKind kind) {
  if (n == 0) throw std::invalid_argument("orthogonal transform: n must be at least 1");
  if (n > (size_t{1} << 31)) throw std::invalid_argument("orthogonal transform: n must be at most 2^31");
  Plan plan;
  switch (kind) {
    case OrthoKind::Hadamard:
      if (!isPowerOfTwo(n))
        throw std::invalid_argument("orthogonal transform: kind 'hadamard' needs n a power of two, got " +
                                    std::to_string(n) + " (use 'auto' or 'kron')");
      plan.emplace_back(OrthoFactor::Type::Hadamard, n);
      break;
    case OrthoKind::Auto: {
      size_t pow2 = 1;
      while ((n / pow2) % 2 == 0) pow2 *= 2;
      const size_t m = n / pow2;
      if (m > 1) denseSplit(m, n, plan);
      if (pow2 > 1 || m == 1) plan.emplace_back(OrthoFactor::Type::Hadamard, pow2);
      break;
    }
    case OrthoKind::Kron: {
      const size_t p = balancedDivisor(n);
      if (p > 1) denseSplit(p, n, plan);
      denseSplit(n / p, n, plan);
      break;
    }
  }
  return plan;
}

OrthoTransform makeOrthoTransform(size_t n, uint32_t seed, OrthoKind kind) {
  OrthoTransform t;
  t.n = n;
  t.seed = seed;
  t.kind = kind;
  const Plan plan = orthoPlan(n, kind);
  for (size_t a = 0; a < plan.size(); a++) {
    OrthoRng rng(seed, n, static_cast<uint32_t>(a));
    t.factors.push_back(plan[a].first == OrthoFactor::Type::Hadamard ? drawHadamard(plan[a].second, rng)
                                                                     : drawDense(plan[a].second, rng));
  }
  return t;
}

void applyOrtho(const OrthoTransform& t, float* X, size_t rows, bool inverse, const CancelFlag* cancel) {
  throwIfCancelled(cancel);
  const size_t n = t.n, count = t.factors.size();
  if (rows == 0 || n == 0) return;
  size_t maxDense = 0;
  for (const OrthoFactor& f : t.factors)
    if (f.type == OrthoFactor::Type::Dense) maxDense = std::max(maxDense, f.size);
  const size_t rowsPerTask = std::max<size_t>(1, kTaskElements / n);
  const size_t tasks = (rows + rowsPerTask - 1) / rowsPerTask;
  const auto run = [&](size_t task) {
    if (isCancelled(cancel)) return;
    std::vector<double> buf(maxDense * kChainLanesMax);
    const size_t begin = task * rowsPerTask, end = std::min(rows, (task + 1) * rowsPerTask);
    for (size_t r = begin; r < end; r++) {
      const float* x = X + r * n;
      const size_t bad = findNonFiniteFloat(x, n);
      if (bad < n)
        throw std::domain_error("orthogonal transform: X[" + std::to_string(r) + ", " + std::to_string(bad) +
                                "] is " + (std::isnan(x[bad]) ? "NaN" : "infinite") + "; transform finite values only");
    }
    // The task's rows go through each factor together: row r's block o is block r·outer + o of
    // the whole, so small factors still fill the batches' lanes (each vector's arithmetic is the
    // same as row by row).
    float* x = X + begin * n;
    for (size_t step = 0; step < count; step++) {
      const size_t a = inverse ? count - 1 - step : step;
      const OrthoFactor& f = t.factors[a];
      size_t outer = end - begin, inner = 1;
      for (size_t i = 0; i < a; i++) outer *= t.factors[i].size;
      for (size_t i = a + 1; i < count; i++) inner *= t.factors[i].size;
      if (f.type == OrthoFactor::Type::Hadamard) {
        hadamardFactor(f, x, outer, inner, inverse);
      } else {
        denseFactor(f, x, outer, inner, inverse, buf.data());
      }
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
