// Packing RTN/GPTQ codes (rtn.h: codes [N = out, K = in] uint8, scales/zeros [N, ngroups]) into
// the byte layouts onnxruntime runs. Every layout here is pinned against onnxruntime-node 1.30 by
// test/native/pack.test.ts (one-node models, outputs compared with our dequantized reference).
//
// ── com.microsoft MatMulNBits (Y = A · dequant(B)ᵀ; attributes K, N, bits, block_size) ──────────
//   B:           uint8 [N, nBlocks, blobSize], nBlocks = ceil(K / block_size),
//                blobSize = block_size · bits / 8. Row n, block kb holds the codes of
//                W[n, kb·block_size …] as a little-endian bit stream: code i of the block occupies
//                bits [i·bits, (i+1)·bits) of the blob, bit 0 = the least significant bit of the
//                blob's first byte. So 4 bits: byte j = code 2j | code 2j+1 << 4 (low nibble
//                first); 2 bits: four codes per byte, lowest bits first; 8 bits: one per byte.
//                Codes past K in the last block are padding: we write 0 (ORT ignores them).
//   scales:      float32 [N · nBlocks] (same type as A), row-major [n, kb]: our scales as they are.
//   zero_points: uint8 [N · ceil(nBlocks · bits / 8)]: per row n, the nBlocks zero points as a
//                bit stream like B (4 bits: two per byte, low nibble first), each row starting on
//                a byte boundary (pad bits 0). Optional: absent means 2^(bits−1) for every block
//                (8 for 4 bits) — exactly rtn.h's symmetric zero (maxq + 1)/2, so symmetric
//                quantization omits the input.
//   dequant:     w[n, k] = scale[n, kb] · (q[n, k] − zp[n, kb]), kb = k / block_size — rtn.h's.
//   ORT 1.30 CPU runs bits ∈ {2, 4, 8} (3 is refused when the session is created: "Only 2b, 4b
//   and 8b quantization is supported"), block_size ∈ {16, 32, 64, 128, 256} (others refused), K
//   not a multiple of block_size (ragged last block) included. accuracy_level 0/1 (fp32 compute)
//   matches the dequantized product to ~1e-7 relative; accuracy_level 4 (int8 activations) is
//   off by ~0.3–1%.
//   Bits per weight: bits + 32/block_size (fp32 scale) + bits/block_size (zero point, if stored);
//   4-bit, block 128, with zero points: 4.28.
//
// ── ONNX DequantizeLinear, blocked int4/uint4 (opset 21: attributes axis = 0, block_size) ─────
//   x:           int4/uint4 [K, N] (the ONNX MatMul orientation, so our codes transposed), two
//                elements per byte in row-major element order, element e in the low nibble of
//                byte e/2 when e is even, in the high nibble when odd (a final odd element leaves
//                the high nibble 0). int4 nibbles are two's complement (−8..7).
//   scale:       float32 [ceil(K / block_size), N] (our scales transposed).
//   zero_point:  same type and shape as scale's, packed like x; absent = 0.
//   dequant:     y[k, n] = (x[k, n] − zp[k/block_size, n]) · scale[k/block_size, n].
//   uint4 + uint4 zero points carries asymmetric 4-bit codes as they are; symmetric codes become
//   int4 x = q − 8 with no zero point (same dequantized values).
//   ORT 1.30 runs it exactly (ragged last block included) with graph optimizations disabled;
//   with the default optimizations DequantizeLinear→MatMul is fused into a kernel that is
//   0.3–0.6% off (pack.test.ts pins both).
//   Bits per weight: 4 + 32/block_size (+ 4/block_size for a zero point).
//
// ── ONNX DequantizeLinear, 8-bit per output channel (axis = 1) ────────────────────────────────
//   x: uint8 [K, N] = codes transposed with zero_point uint8 [N]; or (symmetric, zero 128)
//   int8 [K, N] = q − 128 with no zero point. scale: float32 [N]. Bits per weight 8 (+ 64/K).
#pragma once

#include <cstddef>
#include <cstdint>

#include "cancel.h"

namespace ql {

/** Sizes of a MatMulNBits weight for N outputs, K inputs. */
struct NBitsShape {
  size_t nBlocks;        // ceil(K / blockSize)
  size_t blobSize;       // blockSize · bits / 8
  size_t zpBytesPerRow;  // ceil(nBlocks · bits / 8)
};

/** bits·blockSize must be a multiple of 8; throws std::invalid_argument otherwise. */
NBitsShape nbitsShape(size_t K, int bits, size_t blockSize);

/** codes [N × K] (each < 2^bits) → B [N × nBlocks × blobSize]. Rows over the pool. */
void packMatMulNBits(const uint8_t* codes, size_t N, size_t K, int bits, size_t blockSize, uint8_t* B,
                     const CancelFlag* cancel = nullptr);

/** B → codes [N × K] (padding dropped). */
void unpackMatMulNBits(const uint8_t* B, size_t N, size_t K, int bits, size_t blockSize, uint8_t* codes,
                       const CancelFlag* cancel = nullptr);

/**
 * zeros [N × nBlocks] (integers in [0, 2^bits)) → zero_points [N × zpBytesPerRow]. Throws
 * std::invalid_argument naming the first zero that is not such an integer.
 */
void packNBitsZeroPoints(const float* zeros, size_t N, size_t nBlocks, int bits, uint8_t* zp);

/** zero_points → zeros [N × nBlocks] as floats. */
void unpackNBitsZeroPoints(const uint8_t* zp, size_t N, size_t nBlocks, int bits, float* zeros);

/**
 * codes [N × K] (4-bit, < 16) → ONNX int4/uint4 [K × N], two per byte, low nibble first;
 * `offset` is subtracted first (8 for int4 from symmetric codes, 0 for uint4). out: ceil(K·N/2)
 * bytes.
 */
void packInt4Transposed(const uint8_t* codes, size_t N, size_t K, int offset, uint8_t* out,
                        const CancelFlag* cancel = nullptr);

/** The inverse: ONNX int4/uint4 [K × N] → codes [N × K] (+ offset). */
void unpackInt4Transposed(const uint8_t* packed, size_t N, size_t K, int offset, uint8_t* codes,
                          const CancelFlag* cancel = nullptr);

/** codes [N × K] → ONNX 8-bit [K × N] bytes, q − offset mod 256 (offset 128: uint8 → int8). */
void packInt8Transposed(const uint8_t* codes, size_t N, size_t K, int offset, uint8_t* out,
                        const CancelFlag* cancel = nullptr);

}  // namespace ql
