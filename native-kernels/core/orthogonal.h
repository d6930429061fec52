// Seeded random orthogonal transforms of any size n, for QuIP-style incoherence processing:
// W ↦ W·Tᵀ on the input side (and x ↦ T·x on activations) spreads outliers over all channels.
//
// A transform is a Kronecker product T = F_1 ⊗ F_2 ⊗ … ⊗ F_t of small orthogonal factors
// (sizes d_1·d_2·…·d_t = n). With row-major indexing, i = ((i_1·d_2 + i_2)·d_3 + …), x is a
// tensor [d_1, …, d_t] and T·x applies each F_a along axis a. A factor is either
//   Hadamard(d): x ↦ H_d·diag(s)·x / √d, d a power of two, s seeded random signs (hadamard.h);
//   Dense(d):    a Haar-random orthogonal Q (Stewart 1980): Q = H_0·H_1·…·H_{d−2}·D, H_k the
//                Householder reflection I − v_k·v_kᵀ (v_k·v_k = 2) acting on coordinates
//                k..d−1, v_k from d−k fresh Gaussians (the QR of a Gaussian matrix, reflector by
//                reflector, without ever forming the matrix), D = diag(±1) the QR sign fix
//                (R's diagonal made positive). O(d²) to draw and store, 2d² flops per vector.
//
// Factorization (which factors for n):
//   hadamard: n = 2^k → [Hadamard(n)] (the randomized Hadamard transform); other n: error.
//   auto:     n = m·2^k with m odd → [dense(m)…, Hadamard(2^k)] (dense(m) omitted when m = 1,
//             Hadamard omitted when 2^k = 1 < n): 4096 → H(4096); 172 → Q(43) ⊗ H(4);
//             11008 → Q(43) ⊗ H(256); 5120 → Q(5) ⊗ H(1024); 13824 → Q(27) ⊗ H(512).
//   kron:     n = p·q, p the largest divisor ≤ √n → [dense(p)…, dense(q)…] (p = 1: [dense(n)…]):
//             64 → Q(8) ⊗ Q(8); 172 → Q(4) ⊗ Q(43); 4096 → Q(64) ⊗ Q(64); 11008 → Q(86) ⊗ Q(128).
//   dense(m): Q(m) when m ≤ kMaxDenseFactor (4096), else split m = p·q the same balanced way,
//             recursively; a prime factor above 4096 (e.g. n = 4099) is an error ("no
//             orthogonal transform of that size": pad the dimension or pick another n).
//             A dense factor near 4096 costs 64 MB and ~33 Mflop per vector (fine once, slow on
//             every row of a large matrix); LLM widths have small odd parts (5, 7, 27, 43, …).
//
// Randomness (orthogonal_rng.h): factor a draws from its own stream keyed by (seed, n, a);
// Hadamard signs are the top bit of successive outputs (1 → −1); a dense factor draws v_0's d
// Gaussians, then v_1's d−1, …, v_{d−2}'s 2, then one more whose sign is D's last entry.
// The same (seed, n, kind) gives bit-identical factors on every machine and in TypeScript.
//
// Application (bit-identical to reference-transforms.ts): rows of X [rows × n], each row
// independently. Forward T·x applies F_1, …, F_t in that order; inverse Tᵀ·x applies F_tᵀ, …,
// F_1ᵀ. Hadamard factors run in float32 (signs, butterflies, × float(1/√d); inverse: butterflies,
// × norm, signs). Dense factors load a vector to double, apply D then H_{d−2}, …, H_0 (inverse:
// H_0, …, H_{d−2}, then D), each reflection as c = Σ_i v_i·x_i (in order), x_i ← x_i − c·v_i,
// and round back to float32 once. Rows are split over the pool in fixed blocks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "cancel.h"

namespace ql {

enum class OrthoKind { Hadamard, Kron, Auto };

constexpr size_t kMaxDenseFactor = 4096;

struct OrthoFactor {
  enum class Type { Hadamard, Dense };
  Type type;
  size_t size;
  /** Hadamard: the signs s (±1), size entries. */
  std::vector<float> signs;
  /** Dense: v_0 (size entries), v_1 (size − 1), …, v_{size−2} (2), each with v·v = 2. */
  std::vector<double> reflectors;
  /** Dense: D, size entries of ±1. */
  std::vector<double> d;
};

struct OrthoTransform {
  size_t n = 0;
  uint32_t seed = 0;
  OrthoKind kind = OrthoKind::Auto;
  std::vector<OrthoFactor> factors;
};

/** The factor types and sizes for (n, kind), per the rule above; throws std::invalid_argument. */
std::vector<std::pair<OrthoFactor::Type, size_t>> orthoPlan(size_t n, OrthoKind kind);

/** Draw the factors. Throws std::invalid_argument as orthoPlan (n = 0 included). */
OrthoTransform makeOrthoTransform(size_t n, uint32_t seed, OrthoKind kind);

/**
 * X: [rows × n] in place, each row x ← T·x (inverse: Tᵀ·x). Throws std::domain_error naming
 * the first NaN/±Inf it meets (rows before it, in other pool tasks too, may already be
 * transformed), Cancelled when `cancel` is set.
 */
void applyOrtho(const OrthoTransform& t, float* X, size_t rows, bool inverse, const CancelFlag* cancel = nullptr);

}  // namespace ql
