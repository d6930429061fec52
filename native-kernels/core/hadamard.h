// Fast Walsh–Hadamard transform (FWHT), orthonormal: x ↦ H_n·x / √n.
//
// H_n is the Sylvester Hadamard matrix, H[i][j] = (−1)^popcount(i & j), n a power of two; it is
// symmetric and H_n·H_n = n·I, so the normalized transform is its own inverse. The transform
// runs log2(n) butterfly stages in place (stage h = 1, 2, 4, …, n/2: x[j], x[j+h] ←
// x[j] + x[j+h], x[j] − x[j+h] for every j with bit h clear), in float32, then multiplies by
// norm = float(1/√n) (exact when log2 n is even). Each element's value after each stage is one
// IEEE add or subtract of two values of the previous stage, so any vectorization or ordering of
// a stage gives bit-identical results: the AVX2 path, the scalar path and the TypeScript
// reference (reference-transforms.ts) agree bit for bit.
#pragma once

#include <cstddef>

#include "cancel.h"

namespace ql {

inline bool isPowerOfTwo(size_t n) { return n != 0 && (n & (n - 1)) == 0; }

/** float(1/√n), the orthonormal scale (computed in double, rounded once). */
float fwhtNorm(size_t n);

/** One row: the butterfly stages, then × norm. n a power of two (1 allowed: × norm only). */
void fwhtRowScalar(float* x, size_t n, float norm);

/** One row on the best path (AVX2 when available and n ≥ 8). */
void fwhtRow(float* x, size_t n, float norm);

/**
 * Butterflies along a strided axis: x holds d vectors of length `inner` (vector b at
 * x + b·inner), and every stage combines whole vectors, element by element; then × norm. This is
 * the FWHT applied to each of the `inner` columns of a [d × inner] block, with the same per-element
 * operations as fwhtRowScalar. d a power of two.
 */
void fwhtColumns(float* x, size_t d, size_t inner, float norm);

/** Index of the first NaN/±Inf in x[0..n), or n when all are finite. */
size_t findNonFiniteFloat(const float* x, size_t n);

/**
 * X: [rows × n], row-major; each row ← H_n·row / √n in place. Rows are split over the pool in
 * fixed blocks (results do not depend on the thread count). Throws std::invalid_argument when
 * n is not a power of two, std::domain_error naming the first NaN/±Inf met (rows of other
 * pool tasks may already be transformed), Cancelled when `cancel` is set.
 */
void fwht(float* X, size_t rows, size_t n, const CancelFlag* cancel = nullptr);

}  // namespace ql
