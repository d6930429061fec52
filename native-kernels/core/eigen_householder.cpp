// Householder tridiagonalization (blocked, LAPACK dsytrd/dlatrd with uplo = 'U' seen through the
// transpose: our row-major lower triangle is LAPACK's column-major upper one, so reflectors are
// contiguous rows) and the back-transformation X ← Q·X (compact WY, LAPACK dlarft/dlarfb).
//
// Reduction, from the last row up: reflector H_i zeroes a(i, 0..i−2), then the leading block
// B = a(0..i−1, 0..i−1) becomes H_i·B·H_i = B − v·wᵀ − w·vᵀ with
//   p = τ·B·v,   w = p − (τ/2)(pᵀv)·v.
// Within a panel of kPanel rows the updates are deferred: B is kept as A − V·Wᵀ − W·Vᵀ, each new
// row is brought up to date on its own, and B·v is a symmetric product with the stored A (the
// memory-bound half of the 4/3·n³ flops) corrected by V and W. After the panel one rank-2·kPanel
// update (dgemm on the lower triangle: the compute-bound half) catches the leading block up.
#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "eigen_blas.h"
#include "eigen_internal.h"

namespace ql {
namespace eig {

namespace {

constexpr size_t kPanel = 32;
// Reflectors per compact-WY block of applyQ.
constexpr size_t kApplyBlock = 128;

}  // namespace

double norm2(const double* x, size_t n) {
  const double ss = dot(x, x, n);
  if (ss > 1e-280 && ss < 1e280) return std::sqrt(ss);
  double scale = 0;
  for (size_t i = 0; i < n; i++) scale = std::max(scale, std::fabs(x[i]));
  if (scale == 0 || !std::isfinite(scale)) return scale;
  double s = 0;
  for (size_t i = 0; i < n; i++) {
    const double t = x[i] / scale;
    s += t * t;
  }
  return scale * std::sqrt(s);
}

double householder(size_t m, double& alpha, double* x) {
  const double xnorm = norm2(x, m);
  if (xnorm == 0) return 0;
  const double beta = -std::copysign(std::hypot(alpha, xnorm), alpha);
  const double tau = (beta - alpha) / beta;
  const double scale = 1.0 / (alpha - beta);
  for (size_t i = 0; i < m; i++) x[i] *= scale;
  alpha = beta;
  return tau;
}

namespace {

/**
 * Rows [lo, hi) of the reduction (LAPACK dlatrd): d[lo..hi), e and tau of their reflectors, and
 * W (row c of wt, ld n, for row lo + c) such that the leading block still to be updated is
 * A − V·Wᵀ − W·Vᵀ (V's rows are the reflectors stored in a's rows lo..hi−1).
 */
void reducePanel(double* a, size_t lda, size_t lo, size_t hi, double* wt, size_t ldw, double* d, double* e,
                 double* tau, double* symvWork, const CancelFlag* cancel) {
  const size_t b = hi - lo;
  double t1[kPanel], t2[kPanel];
  for (size_t i = hi; i-- > lo;) {
    throwIfCancelled(cancel);
    const size_t c = i - lo;
    double* ai = a + i * lda;
    // Bring row i (entries 0..i, the diagonal included) up to date with this panel's reflectors.
    for (size_t cp = c + 1; cp < b; cp++) {
      const double* vp = a + (lo + cp) * lda;
      const double* wp = wt + cp * ldw;
      axpy(-wp[i], vp, ai, i + 1);
      axpy(-vp[i], wp, ai, i + 1);
    }
    d[i] = ai[i];
    if (i == 0) break;
    double beta = ai[i - 1];
    const double t = householder(i - 1, beta, ai);
    e[i - 1] = beta;
    tau[i] = t;
    ai[i - 1] = 1;  // v_i's unit entry, read by the later rows of this panel and by applyQ
    double* w = wt + c * ldw;
    if (t == 0) {
      std::fill(w, w + i, 0.0);
      continue;
    }
    // w = τ·(A − V·Wᵀ − W·Vᵀ)·v, then w −= (τ/2)(wᵀv)·v.
    symvLower(i, a, lda, ai, w, symvWork);
    for (size_t cp = c + 1; cp < b; cp++) {
      t1[cp] = dot(wt + cp * ldw, ai, i);
      t2[cp] = dot(a + (lo + cp) * lda, ai, i);
    }
    for (size_t cp = c + 1; cp < b; cp++) {
      axpy(-t1[cp], a + (lo + cp) * lda, w, i);
      axpy(-t2[cp], wt + cp * ldw, w, i);
    }
    for (size_t j = 0; j < i; j++) w[j] *= t;
    axpy(-0.5 * t * dot(w, ai, i), ai, w, i);
  }
}

}  // namespace

void tridiagonalize(double* a, size_t n, size_t lda, double* d, double* e, double* tau, const CancelFlag* cancel) {
  if (n == 0) return;
  tau[0] = 0;
  std::vector<double> wt(kPanel * n);
  std::vector<double> symvWork(symvWorkSize(n));
  std::vector<double> left, right;
  for (size_t hi = n; hi > 0;) {
    const size_t lo = hi > kPanel ? hi - kPanel : 0;
    const size_t b = hi - lo;
    reducePanel(a, lda, lo, hi, wt.data(), n, d, e, tau, symvWork.data(), cancel);
    if (lo > 0) {
      // a(0..lo, 0..lo) −= V·Wᵀ + W·Vᵀ as one product of depth 2b: [V W]·[W V]ᵀ (lower triangle).
      left.resize(2 * b * lo);
      right.resize(2 * b * lo);
      for (size_t c = 0; c < b; c++) {
        const double* v = a + (lo + c) * lda;
        const double* w = wt.data() + c * n;
        std::copy(v, v + lo, left.data() + c * lo);
        std::copy(w, w + lo, left.data() + (b + c) * lo);
        std::copy(w, w + lo, right.data() + c * lo);
        std::copy(v, v + lo, right.data() + (b + c) * lo);
      }
      dgemm(lo, lo, 2 * b, -1.0, left.data(), 1, static_cast<ptrdiff_t>(lo), right.data(),
            static_cast<ptrdiff_t>(lo), 1, 1.0, a, static_cast<ptrdiff_t>(lda), 1, Part::Lower);
    }
    hi = lo;
  }
}

void applyQ(const double* a, size_t n, size_t lda, const double* tau, double* x, size_t ldx, const CancelFlag* cancel) {
  // X = H_{n−1}·…·H_1·X, applied H_1 first, kApplyBlock reflectors at a time:
  //   P = H_{s+k−1}·…·H_s = (H_s·…·H_{s+k−1})ᵀ = (I − V·T·Vᵀ)ᵀ = I − V·Tᵀ·Vᵀ
  // with V = [v_s … v_{s+k−1}] and T upper triangular (dlarft, forward, columnwise).
  if (n < 2) return;
  const size_t kMax = std::min(kApplyBlock, n - 1);
  std::vector<double> vb(kMax * n), t(kMax * kMax), tmp(kMax), y(kMax * n), y2(kMax * n);
  const ptrdiff_t ldxs = static_cast<ptrdiff_t>(ldx);
  for (size_t s = 1; s < n; s += kApplyBlock) {
    throwIfCancelled(cancel);
    const size_t k = std::min(kApplyBlock, n - s);
    const size_t len = s + k - 1;  // rows of X the block touches
    // vb: [k, len], row j = v_{s+j} padded with zeros.
    for (size_t j = 0; j < k; j++) {
      double* row = vb.data() + j * len;
      const size_t vlen = s + j;  // v_{s+j} has s+j entries, the last one 1
      std::copy(a + (s + j) * lda, a + (s + j) * lda + vlen - 1, row);
      row[vlen - 1] = 1;
      std::fill(row + vlen, row + len, 0.0);
    }
    // T[0..j, j] = −τ_j·T[0..j, 0..j]·(V[:, 0..j]ᵀ·v_j), T[j][j] = τ_j (row-major, ld k).
    std::fill(t.begin(), t.begin() + k * k, 0.0);
    for (size_t j = 0; j < k; j++) {
      const double tj = tau[s + j];
      const double* vj = vb.data() + j * len;
      for (size_t p = 0; p < j; p++) tmp[p] = dot(vb.data() + p * len, vj, s + p);
      for (size_t p = 0; p < j; p++) {
        double acc = 0;
        for (size_t q = p; q < j; q++) acc += t[p * k + q] * tmp[q];
        t[p * k + j] = -tj * acc;
      }
      t[j * k + j] = tj;
    }
    const ptrdiff_t lenS = static_cast<ptrdiff_t>(len), nS = static_cast<ptrdiff_t>(n), kS = static_cast<ptrdiff_t>(k);
    // Y = V·X[0..len), Y2 = Tᵀ·Y, X[0..len) −= Vᵀ·Y2.
    dgemm(k, n, len, 1.0, vb.data(), lenS, 1, x, ldxs, 1, 0.0, y.data(), nS, 1);
    dgemm(k, n, k, 1.0, t.data(), 1, kS, y.data(), nS, 1, 0.0, y2.data(), nS, 1);
    dgemm(len, n, k, -1.0, vb.data(), 1, lenS, y2.data(), nS, 1, 1.0, x, ldxs, 1);
  }
}

}  // namespace eig
}  // namespace ql
