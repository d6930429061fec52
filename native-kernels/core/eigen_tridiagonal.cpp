// The tridiagonal eigenproblem T = Z·Λ·Zᵀ: splitting into unreduced blocks, scaling, and the
// implicit QL iteration used for eigenvalues alone and for small blocks with vectors. Larger
// blocks with vectors go to divide and conquer (eigen_dc.cpp).
//
// Why these: eigenvalues alone cost QL O(n²) (about a second at n = 11008), negligible next to the
// 4/3·n³ reduction. With vectors, QL applies ~n² rotations to n-long columns (~6n³ flops that
// stream Z from memory once per sweep), while divide and conquer spends its O(n³) in dgemm, and
// deflation — plentiful in Hessian spectra, with their clusters of tiny eigenvalues — removes
// much of even that. Both are accurate to ~ε·‖T‖ in the eigenvalues; Gu–Eisenstat's recomputed
// secular vector keeps divide and conquer's eigenvectors orthogonal to working precision.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <numeric>
#include <stdexcept>

#include "eigen_internal.h"

namespace ql {
namespace eig {

namespace {

/** Iterations allowed per eigenvalue before QL gives up (EISPACK uses 30; convergence is cubic). */
constexpr int kQlMaxIterations = 60;

/** √(a² + b²): the plain formula where it cannot over- or underflow, else std::hypot. */
inline double pythag(double a, double b) {
  const double r = std::sqrt(a * a + b * b);
  if (r > 1e-140 && r < 1e140) return r;
  return std::hypot(a, b);
}

/** Power of two that brings a positive `norm` into [0.5, 1) (an exact scaling). */
double powerOfTwoScale(double norm) {
  int exponent = 0;
  std::frexp(norm, &exponent);
  return std::ldexp(1.0, -exponent);
}

}  // namespace

void tridiagonalQl(double* d, double* e, size_t n, double* z, size_t ldz, size_t zrows, const CancelFlag* cancel) {
  if (n <= 1) return;
  const double eps = DBL_EPSILON;
  e[n - 1] = 0;
  double f = 0, tst1 = 0;
  for (size_t l = 0; l < n; l++) {
    if (l % 64 == 0) throwIfCancelled(cancel);
    tst1 = std::max(tst1, std::fabs(d[l]) + std::fabs(e[l]));
    size_t m = l;
    while (m < n - 1 && std::fabs(e[m]) > eps * tst1) m++;
    if (m > l) {
      int iterations = 0;
      do {
        if (++iterations > kQlMaxIterations) {
          throw std::runtime_error("symmetricEigen: the tridiagonal QL iteration did not converge");
        }
        // Wilkinson shift from the leading 2 × 2 block, applied implicitly.
        double g = d[l];
        double p = (d[l + 1] - g) / (2 * e[l]);
        double r = pythag(p, 1.0);
        if (p < 0) r = -r;
        d[l] = e[l] / (p + r);
        d[l + 1] = e[l] * (p + r);
        const double dl1 = d[l + 1];
        double h = g - d[l];
        for (size_t i = l + 2; i < n; i++) d[i] -= h;
        f += h;
        // One QL sweep of Givens rotations from m up to l.
        p = d[m];
        double c = 1, c2 = 1, c3 = 1, s = 0, s2 = 0;
        const double el1 = e[l + 1];
        for (size_t i = m; i-- > l;) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i];
          h = c * p;
          r = pythag(p, e[i]);
          e[i + 1] = s * r;
          s = e[i] / r;
          c = p / r;
          p = c * d[i] - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]);
          if (z) {
            double* __restrict zi = z + i * ldz;
            double* __restrict zi1 = zi + ldz;
            for (size_t k = 0; k < zrows; k++) {
              const double t = zi1[k];
              zi1[k] = s * zi[k] + c * t;
              zi[k] = c * zi[k] - s * t;
            }
          }
        }
        p = -s * s2 * c3 * el1 * e[l] / dl1;
        e[l] = s * p;
        d[l] = c * p;
      } while (std::fabs(e[l]) > eps * tst1);
    }
    d[l] += f;
    e[l] = 0;
  }
}

void tridiagonalEigen(double* d, double* e, size_t n, double* z, std::vector<size_t>& order,
                      const CancelFlag* cancel) {
  order.resize(n);
  std::iota(order.begin(), order.end(), size_t{0});
  if (n == 0) return;
  const double eps = DBL_EPSILON;
  if (z) std::fill(z, z + n * n, 0.0);
  std::vector<double> eBlock(n);
  for (size_t start = 0; start < n;) {
    // Unreduced block [start, end]: split where e is negligible next to its diagonal neighbours.
    size_t end = start;
    while (end + 1 < n &&
           std::fabs(e[end]) > eps * std::sqrt(std::fabs(d[end])) * std::sqrt(std::fabs(d[end + 1])))
      end++;
    const size_t m = end - start + 1;
    double* db = d + start;
    double* zb = z ? z + start + start * n : nullptr;
    double norm = 0;
    for (size_t i = 0; i < m; i++) norm = std::max(norm, std::fabs(db[i]));
    for (size_t i = 0; i + 1 < m; i++) norm = std::max(norm, std::fabs(e[start + i]));
    if (zb) {
      for (size_t i = 0; i < m; i++) zb[i + i * n] = 1;
    }
    if (m > 1 && norm > 0) {
      const double scale = powerOfTwoScale(norm);
      for (size_t i = 0; i < m; i++) db[i] *= scale;
      for (size_t i = 0; i + 1 < m; i++) eBlock[i] = e[start + i] * scale;
      if (zb && m > kDcLeaf) {
        divideAndConquer(db, eBlock.data(), m, zb, n, cancel);
      } else {
        tridiagonalQl(db, eBlock.data(), m, zb, n, m, cancel);
      }
      for (size_t i = 0; i < m; i++) db[i] /= scale;
    }
    start = end + 1;
  }
  std::sort(order.begin(), order.end(), [d](size_t i, size_t j) { return d[i] < d[j] || (d[i] == d[j] && i < j); });
}

}  // namespace eig
}  // namespace ql
