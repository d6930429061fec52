// Two-stage tridiagonalization, used when only eigenvalues are wanted (as LAPACK's dsyevd_2stage,
// which also offers no vectors): the one-stage reduction streams the whole trailing matrix from
// memory once per row (symmetric matrix-vector products, ~n³/6 words: minutes at n = 11008);
// going through a band first moves all O(n³) work into dgemm.
//
// Stage 1 (dsytrd_sy2sb), per panel of b = kBand columns k..k+b−1:
//   P = A[k+b:, k:k+b] = Q·R (Householder QR, Q = I − V·T·Vᵀ); R replaces P, so A is banded
//   there; the trailing B = A[k+b:, k+b:] becomes Qᵀ·B·Q = B − V·Wᵀ − W·Vᵀ with
//   X = B·V·T,  W = X − ½·V·(Tᵀ·Vᵀ·X)     (a symmetric product, then a rank-2b update)
// Stage 2 (dsytrd_sb2st), bulge chasing: sweep s zeroes column s below the subdiagonal with a
// reflector of length ≤ b, applied on both sides; the fill-in it makes one block further down
// (the "bulge") has its first column zeroed by the next reflector, and so on to the end of the
// matrix. The rest of each bulge falls inside the next sweep's blocks. ~6·b·n² flops, in cache.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <memory>
#include <thread>
#include <vector>

#include "eigen_blas.h"
#include "eigen_internal.h"
#include "thread_pool.h"

namespace ql {
namespace eig {

namespace {

/** Row blocks of the symmetric product B·V (one pool task each). */
constexpr size_t kSymmTile = 256;

/**
 * Y = B·V for the symmetric B: [m, m] (lower triangle of row-major storage, ld ldb, used as
 * scratch above the diagonal inside diagonal tiles) and V, Y: [m, w] column-major (ld m).
 * Row block I: Y_I = B[I, 0:I_end]·V[0:I_end] + B[I_end:m, I]ᵀ·V[I_end:m], each off-diagonal tile
 * read once from each side; blocks are independent, so the result does not depend on threads.
 */
void symmLower(size_t m, size_t w, double* b, size_t ldb, const double* v, double* y) {
  const size_t tiles = (m + kSymmTile - 1) / kSymmTile;
  const ptrdiff_t ld = static_cast<ptrdiff_t>(ldb), mS = static_cast<ptrdiff_t>(m);
  const auto block = [&](size_t t) {
    const size_t i0 = t * kSymmTile, i1 = std::min(m, i0 + kSymmTile);
    // Mirror this diagonal tile's lower triangle into its upper one.
    for (size_t r = i0; r < i1; r++)
      for (size_t c = r + 1; c < i1; c++) b[r * ldb + c] = b[c * ldb + r];
    dgemm(i1 - i0, w, i1, 1.0, b + i0 * ldb, ld, 1, v, 1, mS, 0.0, y + i0, 1, mS, Part::All, false);
    if (i1 < m) {
      dgemm(i1 - i0, w, m - i1, 1.0, b + i1 * ldb + i0, 1, ld, v + i1, 1, mS, 1.0, y + i0, 1, mS, Part::All, false);
    }
  };
  if (tiles == 1) {
    block(0);
  } else {
    pool().parallelFor(tiles, block);
  }
}

/** Stage 1: A (lower) to a band of half-width b; entries below the band are zeroed. */
void reduceToBand(double* a, size_t n, size_t lda, size_t b, const CancelFlag* cancel) {
  std::vector<double> p, vm, y, x, left, right, t(b * b), mt(b * b), mm(b * b), tau(b), tmp(b);
  for (size_t k = 0; k + b < n; k += b) {
    throwIfCancelled(cancel);
    const size_t r0 = k + b, m = n - r0, w = std::min(b, n - k), q = std::min(m, w);
    const ptrdiff_t mS = static_cast<ptrdiff_t>(m), qS = static_cast<ptrdiff_t>(q);
    // P = A[r0:, k:k+w] into column-major p, Householder QR in place (dgeqr2).
    p.resize(m * w);
    for (size_t i = 0; i < m; i++)
      for (size_t j = 0; j < w; j++) p[i + j * m] = a[(r0 + i) * lda + k + j];
    for (size_t j = 0; j < q; j++) {
      double* col = p.data() + j * m;
      double alpha = col[j];
      tau[j] = householder(m - j - 1, alpha, col + j + 1);
      col[j] = alpha;
      if (tau[j] == 0) continue;
      for (size_t c = j + 1; c < w; c++) {
        double* cc = p.data() + c * m;
        const double s = tau[j] * (cc[j] + dot(col + j + 1, cc + j + 1, m - j - 1));
        cc[j] -= s;
        axpy(-s, col + j + 1, cc + j + 1, m - j - 1);
      }
    }
    // R back into A, zeros below it; V (unit diagonal) apart.
    vm.assign(m * q, 0.0);
    for (size_t i = 0; i < m; i++) {
      for (size_t j = 0; j < w; j++) a[(r0 + i) * lda + k + j] = i <= j ? p[i + j * m] : 0.0;
    }
    for (size_t j = 0; j < q; j++) {
      vm[j + j * m] = 1;
      std::copy(p.data() + j * m + j + 1, p.data() + (j + 1) * m, vm.data() + j * m + j + 1);
    }
    // T: [q, q] upper, row-major (dlarft, forward, columnwise).
    std::fill(t.begin(), t.end(), 0.0);
    for (size_t j = 0; j < q; j++) {
      const double* vj = vm.data() + j * m;
      for (size_t i = 0; i < j; i++) tmp[i] = dot(vm.data() + i * m + j, vj + j, m - j);
      for (size_t i = 0; i < j; i++) {
        double acc = 0;
        for (size_t l = i; l < j; l++) acc += t[i * q + l] * tmp[l];
        t[i * q + j] = -tau[j] * acc;
      }
      t[j * q + j] = tau[j];
    }
    // Y = B·V; X = Y·T; M = Tᵀ·(Vᵀ·X); W = X − ½·V·M (in x).
    double* bt = a + r0 * lda + r0;
    y.resize(m * q);
    x.resize(m * q);
    symmLower(m, q, bt, lda, vm.data(), y.data());
    dgemm(m, q, q, 1.0, y.data(), 1, mS, t.data(), qS, 1, 0.0, x.data(), 1, mS);
    dgemm(q, q, m, 1.0, vm.data(), mS, 1, x.data(), 1, mS, 0.0, mt.data(), qS, 1);
    dgemm(q, q, q, 1.0, t.data(), 1, qS, mt.data(), qS, 1, 0.0, mm.data(), qS, 1);
    dgemm(m, q, q, -0.5, vm.data(), 1, mS, mm.data(), qS, 1, 1.0, x.data(), 1, mS);
    // B −= V·Wᵀ + W·Vᵀ as [V W]·[W V]ᵀ (lower triangle).
    left.resize(2 * m * q);
    right.resize(2 * m * q);
    std::copy(vm.begin(), vm.begin() + m * q, left.begin());
    std::copy(x.begin(), x.begin() + m * q, left.begin() + m * q);
    std::copy(x.begin(), x.begin() + m * q, right.begin());
    std::copy(vm.begin(), vm.begin() + m * q, right.begin() + m * q);
    dgemm(m, m, 2 * q, -1.0, left.data(), 1, mS, right.data(), mS, 1, 1.0, bt, static_cast<ptrdiff_t>(lda), 1,
          Part::Lower);
  }
}

/** D ← H·D·H for the symmetric D: [len, len] (lower triangle, ld), H = I − τ·v·vᵀ. */
void twoSided(double* dblk, size_t ld, size_t len, const double* v, double tau, double* p, double* work) {
  symvLower(len, dblk, ld, v, p, work);
  for (size_t i = 0; i < len; i++) p[i] *= tau;
  axpy(-0.5 * tau * dot(p, v, len), v, p, len);  // p is now w = τBv − ½τ(τBv·v)v
  for (size_t r = 0; r < len; r++) {
    double* row = dblk + r * ld;
    axpy(-v[r], p, row, r + 1);
    axpy(-p[r], v, row, r + 1);
  }
}

/**
 * One task of a bulge-chasing sweep: zero column c0 of A below row st with the reflector on rows
 * st..ed, then apply it to the rest of the previous bulge (left), the diagonal block (both
 * sides) and the block below (right, which makes the next bulge). Touches rows st..ed+b and
 * columns c0..ed only.
 */
void chaseTask(double* a, size_t n, size_t lda, size_t b, size_t c0, size_t st, size_t ed, double* v, double* p,
               double* colw, double* work) {
  const size_t len = ed - st + 1;
  if (len < 2) return;
  for (size_t i = 0; i < len; i++) v[i] = a[(st + i) * lda + c0];
  double alpha = v[0];
  const double tau = householder(len - 1, alpha, v + 1);
  v[0] = 1;
  a[st * lda + c0] = alpha;
  for (size_t i = 1; i < len; i++) a[(st + i) * lda + c0] = 0;
  if (tau == 0) return;
  if (st > c0 + 1) {
    const size_t cols = st - 1 - c0;
    std::fill(colw, colw + cols, 0.0);
    for (size_t i = 0; i < len; i++) axpy(v[i], a + (st + i) * lda + c0 + 1, colw, cols);
    for (size_t i = 0; i < len; i++) axpy(-tau * v[i], colw, a + (st + i) * lda + c0 + 1, cols);
  }
  twoSided(a + st * lda + st, lda, len, v, tau, p, work);
  for (size_t r = ed + 1; r <= std::min(n - 1, ed + b); r++) {
    double* row = a + r * lda + st;
    axpy(-tau * dot(row, v, len), v, row, len);
  }
}

/**
 * Stage 2: the band (half-width b, lower triangle of A) to T(d, e) by bulge chasing (values only).
 *
 * Sweeps run in a pipeline on the pool: task t of sweep s touches rows s+1+t·b … s+(t+2)·b and
 * columns s+1+(t−1)·b … s+(t+1)·b, so it overlaps only tasks t−1 … t+2 of sweep s−1. It starts
 * once sweep s−1 has finished task t + kLag − 1 (kLag = 3 is the least that is safe; 4 leaves a
 * margin), so every element sees the same updates in the same order as in one sequential pass:
 * results do not depend on the thread count. Sweeps are claimed in order from a counter, so a
 * lone thread simply runs them one after another.
 */
void bandToTridiagonal(double* a, size_t n, size_t lda, size_t b, double* d, double* e, const CancelFlag* cancel) {
  constexpr size_t kLag = 4;
  constexpr size_t kDone = ~size_t{0};
  const size_t sweeps = n > 2 ? n - 2 : 0;
  std::unique_ptr<std::atomic<size_t>[]> progress(new std::atomic<size_t>[sweeps + 1]);
  for (size_t s = 0; s <= sweeps; s++) progress[s].store(0, std::memory_order_relaxed);
  std::atomic<size_t> next{0};
  std::atomic<bool> stop{false};
  const auto worker = [&](size_t) {
    std::vector<double> v(b), p(b), colw(2 * b), work(symvWorkSize(b));
    for (;;) {
      const size_t s = next.fetch_add(1, std::memory_order_relaxed);
      if (s >= sweeps) return;
      if (s % 16 == 0 && isCancelled(cancel)) stop.store(true, std::memory_order_relaxed);
      size_t c0 = s, st = s + 1, ed = std::min(n - 1, s + b);
      for (size_t t = 0;; t++) {
        if (s > 0) {
          while (progress[s - 1].load(std::memory_order_acquire) < t + kLag) {
            if (stop.load(std::memory_order_relaxed)) return;
            std::this_thread::yield();
          }
        }
        if (stop.load(std::memory_order_relaxed)) return;
        chaseTask(a, n, lda, b, c0, st, ed, v.data(), p.data(), colw.data(), work.data());
        if (ed + 1 >= n) break;
        progress[s].store(t + 1, std::memory_order_release);
        c0 = st;
        st = ed + 1;
        ed = std::min(n - 1, ed + b);
      }
      progress[s].store(kDone, std::memory_order_release);
    }
  };
  const size_t threads = std::min<size_t>(pool().threads(), std::max<size_t>(1, sweeps / 64));
  if (threads <= 1)
    worker(0);
  else
    pool().parallelFor(threads, worker);
  if (stop.load()) throwIfCancelled(cancel);
  for (size_t i = 0; i < n; i++) d[i] = a[i * lda + i];
  for (size_t i = 0; i + 1 < n; i++) e[i] = a[(i + 1) * lda + i];
}

}  // namespace

void tridiagonalizeTwoStage(double* a, size_t n, size_t lda, double* d, double* e, const CancelFlag* cancel) {
  if (n == 0) return;
  reduceToBand(a, n, lda, kBand, cancel);
  bandToTridiagonal(a, n, lda, kBand, d, e, cancel);
}

}  // namespace eig
}  // namespace ql
