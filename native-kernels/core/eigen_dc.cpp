// Divide and conquer for the symmetric tridiagonal eigenproblem (Cuppen; LAPACK dlaed0..dlaed4,
// with Gu and Eisenstat's recomputed secular vector for orthogonal eigenvectors).
//
// Split T at m = n/2 with β = e[m−1]:  T = diag(T1', T2') + |β|·u·uᵀ, u = [e_last; sign(β)·e_first],
// where T1', T2' have |β| taken off the two diagonal entries next to the cut. With T1' = Q1·D1·Q1ᵀ
// and T2' = Q2·D2·Q2ᵀ solved recursively, T = Q·(D + ρ·z·zᵀ)·Qᵀ with Q = diag(Q1, Q2),
// z = Qᵀu/√2 (unit norm), ρ = 2|β|. The merge
//   1. deflates: a negligible z_j leaves (d_j, q_j) an eigenpair as is; two close d's are
//      rotated so one of their z's vanishes (dlaed2);
//   2. solves the secular equation 1/ρ + Σ z_i²/(d_i − λ) = 0 for the k remaining poles, one root
//      per interval, each as τ = λ − d_origin from its nearer pole so that d_i − λ keeps its
//      relative accuracy (dlaed4);
//   3. recomputes ẑ_i² = Π_j(λ_j − d_i) / Π_{j≠i}(d_j − d_i) from the computed roots, which makes
//      the vectors u_j = (D − λ_j)⁻¹·ẑ numerically orthogonal (dlaed3);
//   4. multiplies Q by U with dgemm, split by the block structure of Q: columns that came from
//      Q1 alone have zeros in Q2's rows and vice versa (only deflation rotations mix them).
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <numeric>
#include <vector>

#include "eigen_blas.h"
#include "eigen_internal.h"
#include "thread_pool.h"

namespace ql {
namespace eig {

namespace {

constexpr int kSecularMaxIterations = 100;
constexpr double kSqrtHalf = 0.70710678118654752440;
// Roots (or rows) per pool task in the O(k²) stages of a merge; smaller merges stay on one thread.
constexpr size_t kSecularChunk = 64;
constexpr size_t kSecularParallelMin = 256;

template <typename Body>
void forChunks(size_t count, const Body& body) {
  const size_t chunks = (count + kSecularChunk - 1) / kSecularChunk;
  const auto run = [&](size_t c) {
    for (size_t i = c * kSecularChunk; i < std::min(count, (c + 1) * kSecularChunk); i++) body(i);
  };
  if (count < kSecularParallelMin) {
    for (size_t c = 0; c < chunks; c++) run(c);
  } else {
    pool().parallelFor(chunks, run);
  }
}

/** A root of the secular equation: λ = dl[origin] + tau, origin the nearer pole. */
struct Root {
  size_t origin = 0;
  double tau = 0;
};

/**
 * Root j of f(λ) = 1/ρ + Σ_i w_i²/(dl_i − λ) (dl strictly increasing, ρ > 0): in (dl_j, dl_{j+1}),
 * or in (dl_{k−1}, dl_{k−1} + ρ·‖w‖²] for j = k−1. Works in τ = λ − dl_origin with δ_i = dl_i −
 * dl_origin (`delta`, k scratch entries) and a bracket [lo, hi] kept from the sign of f.
 * Each step fits f near τ by c + s/(δ_j − τ − η) + S/(δ_{j+1} − τ − η) matching f and f′ (the
 * poles left of the root carry ψ′, those right of it φ′: Li's "middle way"), falling back to
 * Newton or bisection when the step leaves the bracket. Stops when |f| is below its rounding
 * error bound (as dlaed4), or the bracket is down to a few ulps.
 */
Root secularRoot(size_t j, size_t k, const double* dl, const double* w, double rho, double* delta) {
  const double eps = DBL_EPSILON;
  const double rhoinv = 1.0 / rho;
  if (k == 1) return {0, rho * w[0] * w[0]};
  Root root;
  double lo, hi, tau;
  const bool last = j == k - 1;
  if (last) {
    root.origin = k - 1;
    double ww = 0;
    for (size_t i = 0; i < k; i++) ww += w[i] * w[i];
    lo = 0;
    hi = rho * ww * (1 + 4 * eps);
    for (size_t i = 0; i < k; i++) delta[i] = dl[i] - dl[k - 1];
    tau = hi / 2;
  } else {
    const double gap = dl[j + 1] - dl[j];
    const double mid = gap / 2;
    for (size_t i = 0; i < k; i++) delta[i] = dl[i] - dl[j];
    double fmid = rhoinv;
    for (size_t i = 0; i < k; i++) fmid += w[i] * w[i] / (delta[i] - mid);
    if (fmid >= 0) {  // f increases through the interval: the root is in the left half
      root.origin = j;
      lo = 0;
      hi = mid;
      tau = mid;
    } else {
      root.origin = j + 1;
      for (size_t i = 0; i < k; i++) delta[i] = dl[i] - dl[j + 1];
      lo = -mid;
      hi = 0;
      tau = -mid;
    }
  }
  // Poles 0..j are left of the root (ψ), j+1..k−1 right of it (φ).
  for (int iter = 0; iter < kSecularMaxIterations; iter++) {
    double psi = 0, dpsi = 0, phi = 0, dphi = 0;
    for (size_t i = 0; i <= j; i++) {
      const double t = w[i] / (delta[i] - tau);
      psi += w[i] * t;
      dpsi += t * t;
    }
    for (size_t i = j + 1; i < k; i++) {
      const double t = w[i] / (delta[i] - tau);
      phi += w[i] * t;
      dphi += t * t;
    }
    const double f = rhoinv + psi + phi;
    const double df = dpsi + dphi;
    const double errorBound = 8 * (phi - psi) + 2 * rhoinv + 3 * std::fabs(tau) * df;
    if (std::fabs(f) <= eps * errorBound) break;
    if (f < 0)
      lo = std::max(lo, tau);
    else
      hi = std::min(hi, tau);
    if (hi - lo <= 4 * eps * std::max(std::fabs(lo), std::fabs(hi))) break;
    double eta;
    const double dlo = delta[j] - tau;  // < 0
    if (last) {
      // c + s/(dlo − η) with s = dlo²ψ′, c = f − dlo·ψ′; its root is η = dlo + s/c.
      const double cc = f - dlo * dpsi;
      eta = cc > 0 ? dlo + dlo * dlo * dpsi / cc : -f / df;
    } else {
      const double dhi = delta[j + 1] - tau;  // > 0
      const double s = dlo * dlo * dpsi, bigS = dhi * dhi * dphi;
      const double a = f - dlo * dpsi - dhi * dphi;  // the model's constant c
      // a·η² − b·η + c0 = 0 from c(dlo−η)(dhi−η) + s(dhi−η) + S(dlo−η) = 0.
      const double b = a * (dlo + dhi) + s + bigS;
      const double c0 = dlo * dhi * f;
      if (a == 0) {
        eta = b != 0 ? c0 / b : -f / df;
      } else {
        const double disc = std::sqrt(std::fabs(b * b - 4 * a * c0));
        eta = b <= 0 ? (b - disc) / (2 * a) : 2 * c0 / (b + disc);
      }
    }
    if (!(f * eta < 0)) eta = -f / df;  // a step must go downhill (also catches NaN)
    double next = tau + eta;
    if (!(next > lo && next < hi)) next = f < 0 ? (tau + hi) / 2 : (lo + tau) / 2;
    if (next == tau) break;
    tau = next;
  }
  root.tau = tau;
  return root;
}

struct Merge {
  size_t k = 0;                // poles left after deflation
  std::vector<size_t> pole;    // their columns of q, in increasing order of dl
  std::vector<double> dl, w;   // poles and weights of the secular equation
  std::vector<size_t> deflated;  // columns of q that are eigenvectors already (eigenvalue d[col])
  std::vector<int> type;       // per column of q: 1 rows of Q1 only, 3 rows of Q2 only, 2 both
};

/** Steps 1 of the merge (dlaed2): z, ρ, deflation, the poles. Rotates columns of q and entries of d. */
Merge deflate(double* d, size_t n, size_t n1, double beta, double* q, size_t ldq, std::vector<double>& z, double& rho) {
  const double eps = DBL_EPSILON;
  Merge mg;
  z.resize(n);
  const double sign = beta < 0 ? -1.0 : 1.0;
  for (size_t j = 0; j < n1; j++) z[j] = q[(n1 - 1) + j * ldq] * kSqrtHalf;
  for (size_t j = n1; j < n; j++) z[j] = sign * q[n1 + j * ldq] * kSqrtHalf;
  rho = 2 * std::fabs(beta);
  mg.type.resize(n);
  for (size_t j = 0; j < n; j++) mg.type[j] = j < n1 ? 1 : 3;
  // Increasing d: merge the two sorted halves.
  std::vector<size_t> index(n);
  std::iota(index.begin(), index.end(), size_t{0});
  std::inplace_merge(index.begin(), index.begin() + static_cast<ptrdiff_t>(n1), index.end(),
                     [d](size_t a, size_t b) { return d[a] < d[b]; });
  double dmax = 0, zmax = 0;
  for (size_t j = 0; j < n; j++) {
    dmax = std::max(dmax, std::fabs(d[j]));
    zmax = std::max(zmax, std::fabs(z[j]));
  }
  const double tol = 8 * eps * std::max(dmax, zmax);
  const size_t none = n;
  size_t pj = none;
  for (size_t jj = 0; jj < n; jj++) {
    const size_t nj = index[jj];
    if (rho * std::fabs(z[nj]) <= tol) {
      mg.deflated.push_back(nj);
      continue;
    }
    if (pj == none) {
      pj = nj;
      continue;
    }
    // Close eigenvalues: rotate (pj, nj) so that z_pj vanishes, if the coupling this leaves is negligible.
    double s = z[pj], c = z[nj];
    const double tau = std::hypot(c, s);
    const double t = d[nj] - d[pj];
    c /= tau;
    s = -s / tau;
    if (std::fabs(t * c * s) <= tol) {
      z[nj] = tau;
      z[pj] = 0;
      if (mg.type[nj] != mg.type[pj]) mg.type[nj] = 2;
      double* qp = q + pj * ldq;
      double* qn = q + nj * ldq;
      for (size_t i = 0; i < n; i++) {
        const double x = qp[i], y = qn[i];
        qp[i] = c * x + s * y;
        qn[i] = c * y - s * x;
      }
      const double dp = d[pj] * c * c + d[nj] * s * s;
      d[nj] = d[pj] * s * s + d[nj] * c * c;
      d[pj] = dp;
      mg.deflated.push_back(pj);
    } else {
      mg.pole.push_back(pj);
    }
    pj = nj;
  }
  if (pj != none) mg.pole.push_back(pj);
  mg.k = mg.pole.size();
  mg.dl.resize(mg.k);
  mg.w.resize(mg.k);
  for (size_t p = 0; p < mg.k; p++) {
    mg.dl[p] = d[mg.pole[p]];
    mg.w[p] = z[mg.pole[p]];
  }
  return mg;
}

/** Merge the solved halves [0, n1) and [n1, n) of q (column-major, ld ldq) and d; β coupled them. */
void merge(double* d, size_t n, size_t n1, double beta, double* q, size_t ldq, const CancelFlag* cancel) {
  throwIfCancelled(cancel);
  const size_t n2 = n - n1;
  std::vector<double> z;
  double rho = 0;
  const Merge mg = deflate(d, n, n1, beta, q, ldq, z, rho);
  const size_t k = mg.k;
  const double* dl = mg.dl.data();

  // 2. Roots of the secular equation.
  std::vector<Root> roots(k);
  forChunks(k, [&](size_t j) {
    thread_local std::vector<double> delta;
    delta.resize(k);
    roots[j] = secularRoot(j, k, dl, mg.w.data(), rho, delta.data());
  });
  throwIfCancelled(cancel);
  // d_i − λ_j, accurate because λ_j is held relative to its nearer pole.
  const auto gap = [&](size_t i, size_t j) { return (dl[i] - dl[roots[j].origin]) - roots[j].tau; };

  // 3. Gu–Eisenstat: ẑ_i² = −(d_i − λ_i)·Π_{j≠i} (d_i − λ_j)/(d_i − d_j), with the sign of w_i.
  std::vector<double> zhat(k);
  forChunks(k, [&](size_t i) {
    double prod = gap(i, i);
    for (size_t j = 0; j < k; j++) {
      if (j != i) prod *= gap(i, j) / (dl[i] - dl[j]);
    }
    zhat[i] = std::copysign(std::sqrt(std::max(0.0, -prod)), mg.w[i]);
  });

  // U: [k, k] column-major, u_j = (D − λ_j)⁻¹·ẑ normalized; rows ordered by the type of their
  // column of q (type 1, then 2, then 3) so each half of the dgemm reads a contiguous row range.
  std::vector<size_t> row(k);
  size_t count[4] = {0, 0, 0, 0};
  for (size_t p = 0; p < k; p++) count[mg.type[mg.pole[p]]]++;
  size_t next[4] = {0, 0, count[1], count[1] + count[2]};
  for (size_t p = 0; p < k; p++) row[p] = next[mg.type[mg.pole[p]]]++;
  std::vector<double> u(k * k);
  forChunks(k, [&](size_t j) {
    double* uj = u.data() + j * k;
    double ss = 0;
    for (size_t i = 0; i < k; i++) {
      const double v = zhat[i] / gap(i, j);
      uj[row[i]] = v;
      ss += v * v;
    }
    const double inv = 1.0 / std::sqrt(ss);
    for (size_t i = 0; i < k; i++) uj[i] *= inv;
  });
  throwIfCancelled(cancel);

  // 4. New eigenvectors: top rows from the columns of types 1-2, bottom rows from types 2-3.
  const size_t k12 = count[1] + count[2], k23 = count[2] + count[3];
  std::vector<double> top(n1 * k12), bottom(n2 * k23);
  for (size_t p = 0; p < k; p++) {
    const double* col = q + mg.pole[p] * ldq;
    const int type = mg.type[mg.pole[p]];
    if (type <= 2) std::copy(col, col + n1, top.data() + row[p] * n1);
    if (type >= 2) std::copy(col + n1, col + n, bottom.data() + (row[p] - count[1]) * n2);
  }
  std::vector<double> qw(n * n);
  const ptrdiff_t nS = static_cast<ptrdiff_t>(n), kS = static_cast<ptrdiff_t>(k);
  dgemm(n1, k, k12, 1.0, top.data(), 1, static_cast<ptrdiff_t>(n1), u.data(), 1, kS, 0.0, qw.data(), 1, nS);
  dgemm(n2, k, k23, 1.0, bottom.data(), 1, static_cast<ptrdiff_t>(n2), u.data() + count[1], 1, kS, 0.0,
        qw.data() + n1, 1, nS);
  std::vector<double> values(n);
  for (size_t j = 0; j < k; j++) values[j] = dl[roots[j].origin] + roots[j].tau;
  for (size_t t = 0; t < mg.deflated.size(); t++) {
    const size_t col = mg.deflated[t];
    std::copy(q + col * ldq, q + col * ldq + n, qw.data() + (k + t) * n);
    values[k + t] = d[col];
  }
  // Ascending eigenvalues, vectors alongside, back into d and q.
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return values[a] < values[b]; });
  for (size_t t = 0; t < n; t++) {
    d[t] = values[order[t]];
    std::copy(qw.data() + order[t] * n, qw.data() + (order[t] + 1) * n, q + t * ldq);
  }
}

void solve(double* d, const double* e, size_t n, double* q, size_t ldq, const CancelFlag* cancel) {
  if (n <= kDcLeaf) {
    for (size_t j = 0; j < n; j++) {
      std::fill(q + j * ldq, q + j * ldq + n, 0.0);
      q[j + j * ldq] = 1;
    }
    double eLeaf[kDcLeaf];
    std::copy(e, e + n - 1, eLeaf);
    tridiagonalQl(d, eLeaf, n, q, ldq, n, cancel);
    // Ascending, by selection (n ≤ kDcLeaf), columns alongside.
    for (size_t i = 0; i + 1 < n; i++) {
      size_t m = i;
      for (size_t j = i + 1; j < n; j++)
        if (d[j] < d[m]) m = j;
      if (m != i) {
        std::swap(d[i], d[m]);
        std::swap_ranges(q + i * ldq, q + i * ldq + n, q + m * ldq);
      }
    }
    return;
  }
  const size_t n1 = n / 2;
  const double beta = e[n1 - 1];
  d[n1 - 1] -= std::fabs(beta);
  d[n1] -= std::fabs(beta);
  solve(d, e, n1, q, ldq, cancel);
  solve(d + n1, e + n1, n - n1, q + n1 + n1 * ldq, ldq, cancel);
  // The off-diagonal blocks of this q block are zero (the caller's z was, and merges stay inside).
  merge(d, n, n1, beta, q, ldq, cancel);
}

}  // namespace

void divideAndConquer(double* d, const double* e, size_t n, double* z, size_t ldz, const CancelFlag* cancel) {
  for (size_t j = 0; j < n; j++) std::fill(z + j * ldz, z + j * ldz + n, 0.0);
  solve(d, e, n, z, ldz, cancel);
}

}  // namespace eig
}  // namespace ql
