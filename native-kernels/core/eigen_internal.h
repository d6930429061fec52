// The stages of the symmetric eigensolver (eigen.h), shared by its source files:
//
//   eigen_householder.cpp   A = Q·T·Qᵀ (blocked Householder, LAPACK dsytrd/dlatrd) and X ← Q·X
//   eigen_tridiagonal.cpp   T = Z·Λ·Zᵀ: splitting, scaling, implicit QL (values, small blocks)
//   eigen_dc.cpp            T = Z·Λ·Zᵀ by divide and conquer (LAPACK dstedc/dlaed0..4)
//
// Storage: A is row-major with only its lower triangle (j ≤ i) meaningful; T is d[0..n) on the
// diagonal and e[0..n−1) beside it (e[i] couples i and i+1); Z is column-major (column j is the
// eigenvector of the tridiagonal for d[j], contiguous).
#pragma once

#include <cstddef>
#include <vector>

#include "cancel.h"

namespace ql {
namespace eig {

/** ‖x‖₂ without overflow or destructive underflow. */
double norm2(const double* x, size_t n);

/**
 * LAPACK dlarfg: the reflector H = I − τ·v·vᵀ that maps (alpha, x) to (beta, 0…0): v is 1 at
 * alpha's place and x/(alpha − beta) at x's. x (m entries) is overwritten by that part of v,
 * alpha by beta; returns τ (0: H = I).
 */
double householder(size_t m, double& alpha, double* x);

/**
 * Householder tridiagonalization of the symmetric A: [n, n] (row-major, lower triangle read,
 * leading dimension lda, overwritten). Reflector H_i = I − tau[i]·v_i·v_iᵀ (i = 1..n−1) acts on
 * coordinates 0..i−1 and zeroes a(i, 0..i−2); v_i[i−1] = 1 and v_i[0..i−2] is left in
 * a(i, 0..i−2). On return T = Qᵀ·A·Q with Q = H_{n−1}·…·H_1 (d: n values, e: n−1, tau: n).
 * The upper triangle of `a` is scratch.
 */
void tridiagonalize(double* a, size_t n, size_t lda, double* d, double* e, double* tau, const CancelFlag* cancel);

/** X ← Q·X for the Q of tridiagonalize (a and tau as it left them); X: [n, n] row-major, ldx. */
void applyQ(const double* a, size_t n, size_t lda, const double* tau, double* x, size_t ldx, const CancelFlag* cancel);

/**
 * Two-stage tridiagonalization for eigenvalues alone (LAPACK dsytrd_sy2sb + dsytrd_sb2st): A
 * (row-major, lower triangle, overwritten) is reduced to a band of half-width kBand with
 * compute-bound dgemm updates, then the band to T(d, e) by bulge chasing. No Q is kept.
 */
void tridiagonalizeTwoStage(double* a, size_t n, size_t lda, double* d, double* e, const CancelFlag* cancel);

/** Half-bandwidth of the intermediate band in tridiagonalizeTwoStage. */
constexpr size_t kBand = 64;

/**
 * Eigenvalues (and with z, eigenvectors) of the tridiagonal T(d, e), n ≥ 1. d and e are
 * overwritten; on return d[order[t]] is the t-th smallest eigenvalue and, when z is given
 * (column-major [n, n], ld n, any contents), column order[t] of z is its unit eigenvector.
 * Unreduced blocks are solved apart, each scaled to max-norm ~1.
 */
void tridiagonalEigen(double* d, double* e, size_t n, double* z, std::vector<size_t>& order,
                      const CancelFlag* cancel);

/**
 * Implicit QL with Wilkinson shifts (EISPACK tql2) on T(d, e), n ≥ 1; e needs n entries (e[n−1]
 * is scratch). With z (column-major, ld ldz, rows zrows), every rotation is applied to its
 * columns, so z ← z·(eigenvectors of T). d is left unsorted. Absolute accuracy ~ε·‖T‖.
 */
void tridiagonalQl(double* d, double* e, size_t n, double* z, size_t ldz, size_t zrows, const CancelFlag* cancel);

/**
 * Divide and conquer on the unreduced T(d, e) (n > kDcLeaf, ‖T‖ ~ 1): z (column-major,
 * ld ldz) receives the eigenvectors, d the eigenvalues in ascending order. e[0..n−1) is read.
 */
void divideAndConquer(double* d, const double* e, size_t n, double* z, size_t ldz, const CancelFlag* cancel);

/** Blocks up to this size are solved by QL (with vectors) in divide and conquer. */
constexpr size_t kDcLeaf = 32;

}  // namespace eig
}  // namespace ql
