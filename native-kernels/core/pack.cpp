#include "pack.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "thread_pool.h"

namespace ql {

namespace {

constexpr size_t kTaskBytes = size_t{1} << 16;

void checkBits(int bits, const char* fn) {
  if (bits < 1 || bits > 8) throw std::invalid_argument(std::string(fn) + ": bits must be in 1..8, got " + std::to_string(bits));
}

/** Code i of a little-endian bit stream of `bits`-bit codes. */
inline uint8_t getCode(const uint8_t* stream, size_t i, int bits) {
  const size_t bit = i * static_cast<size_t>(bits);
  const unsigned shift = bit & 7;
  unsigned v = stream[bit >> 3] >> shift;
  if (shift + bits > 8) v |= static_cast<unsigned>(stream[(bit >> 3) + 1]) << (8 - shift);
  return static_cast<uint8_t>(v & ((1u << bits) - 1));
}

/** OR code v (< 2^bits) into position i of a zeroed stream. */
inline void putCode(uint8_t* stream, size_t i, int bits, unsigned v) {
  const size_t bit = i * static_cast<size_t>(bits);
  const unsigned shift = bit & 7;
  stream[bit >> 3] = static_cast<uint8_t>(stream[bit >> 3] | (v << shift));
  if (shift + bits > 8) stream[(bit >> 3) + 1] = static_cast<uint8_t>(stream[(bit >> 3) + 1] | (v >> (8 - shift)));
}

[[noreturn]] void throwBadCode(const char* fn, size_t row, size_t col, unsigned v, int bits) {
  throw std::invalid_argument(std::string(fn) + ": codes[" + std::to_string(row) + ", " + std::to_string(col) +
                              "] = " + std::to_string(v) + " does not fit in " + std::to_string(bits) + " bits");
}

void forTasks(size_t items, size_t itemsPerTask, const CancelFlag* cancel, const std::function<void(size_t, size_t)>& body) {
  throwIfCancelled(cancel);
  if (items == 0) return;
  const size_t per = std::max<size_t>(1, itemsPerTask);
  const size_t tasks = (items + per - 1) / per;
  const auto run = [&](size_t t) {
    if (isCancelled(cancel)) return;
    body(t * per, std::min(items, (t + 1) * per));
  };
  if (tasks == 1) {
    run(0);
  } else {
    pool().parallelFor(tasks, run);
  }
  throwIfCancelled(cancel);
}

}  // namespace

NBitsShape nbitsShape(size_t K, int bits, size_t blockSize) {
  checkBits(bits, "MatMulNBits");
  if (blockSize == 0 || (blockSize * static_cast<size_t>(bits)) % 8 != 0)
    throw std::invalid_argument("MatMulNBits: block_size · bits must be a positive multiple of 8");
  NBitsShape s;
  s.nBlocks = (K + blockSize - 1) / blockSize;
  s.blobSize = blockSize * static_cast<size_t>(bits) / 8;
  s.zpBytesPerRow = (s.nBlocks * static_cast<size_t>(bits) + 7) / 8;
  return s;
}

void packMatMulNBits(const uint8_t* codes, size_t N, size_t K, int bits, size_t blockSize, uint8_t* B,
                     const CancelFlag* cancel) {
  const NBitsShape s = nbitsShape(K, bits, blockSize);
  const size_t rowBytes = s.nBlocks * s.blobSize;
  forTasks(N, kTaskBytes / std::max<size_t>(1, K), cancel, [&](size_t n0, size_t n1) {
    for (size_t n = n0; n < n1; n++) {
      const uint8_t* q = codes + n * K;
      uint8_t* row = B + n * rowBytes;
      std::memset(row, 0, rowBytes);
      unsigned over = 0;
      for (size_t k = 0; k < K; k++) over |= q[k];
      if (over >> bits) {
        for (size_t k = 0; k < K; k++)
          if (q[k] >> bits) throwBadCode("packMatMulNBits", n, k, q[k], bits);
      }
      if (bits == 8) {
        // Blocks are contiguous and blobSize = blockSize: the row is the codes, zero padded.
        std::memcpy(row, q, K);
      } else if (bits == 4) {
        for (size_t k = 0; k + 1 < K; k += 2) row[k / 2] = static_cast<uint8_t>(q[k] | (q[k + 1] << 4));
        if (K % 2) row[K / 2] = q[K - 1];
      } else {
        // Blocks are whole bytes (blockSize·bits % 8 == 0), so one stream over the row is the
        // concatenation of the blocks' streams.
        for (size_t k = 0; k < K; k++) putCode(row, k, bits, q[k]);
      }
    }
  });
}

void unpackMatMulNBits(const uint8_t* B, size_t N, size_t K, int bits, size_t blockSize, uint8_t* codes,
                       const CancelFlag* cancel) {
  const NBitsShape s = nbitsShape(K, bits, blockSize);
  const size_t rowBytes = s.nBlocks * s.blobSize;
  forTasks(N, kTaskBytes / std::max<size_t>(1, K), cancel, [&](size_t n0, size_t n1) {
    for (size_t n = n0; n < n1; n++)
      for (size_t k = 0; k < K; k++) codes[n * K + k] = getCode(B + n * rowBytes, k, bits);
  });
}

void packNBitsZeroPoints(const float* zeros, size_t N, size_t nBlocks, int bits, uint8_t* zp) {
  checkBits(bits, "packNBitsZeroPoints");
  const size_t rowBytes = (nBlocks * static_cast<size_t>(bits) + 7) / 8;
  const float maxq = static_cast<float>((1 << bits) - 1);
  std::memset(zp, 0, N * rowBytes);
  for (size_t n = 0; n < N; n++) {
    for (size_t b = 0; b < nBlocks; b++) {
      const float z = zeros[n * nBlocks + b];
      if (!(z >= 0 && z <= maxq) || z != std::floor(z))
        throw std::invalid_argument("packNBitsZeroPoints: zeros[" + std::to_string(n) + ", " + std::to_string(b) +
                                    "] = " + std::to_string(z) + " is not an integer in [0, " +
                                    std::to_string((1 << bits) - 1) + "]");
      putCode(zp + n * rowBytes, b, bits, static_cast<unsigned>(z));
    }
  }
}

void unpackNBitsZeroPoints(const uint8_t* zp, size_t N, size_t nBlocks, int bits, float* zeros) {
  checkBits(bits, "unpackNBitsZeroPoints");
  const size_t rowBytes = (nBlocks * static_cast<size_t>(bits) + 7) / 8;
  for (size_t n = 0; n < N; n++)
    for (size_t b = 0; b < nBlocks; b++) zeros[n * nBlocks + b] = getCode(zp + n * rowBytes, b, bits);
}

namespace {

// Transposes run over tasks of whole pairs of output rows k (2·N nibbles = N bytes, so every
// task starts on a byte), reading each code row n in runs of kTileK consecutive k.
constexpr size_t kTileK = 16;

}  // namespace

void packInt4Transposed(const uint8_t* codes, size_t N, size_t K, int offset, uint8_t* out, const CancelFlag* cancel) {
  if (N == 0 || K == 0) return;
  const size_t pairs = (K + 1) / 2;
  forTasks(pairs, std::max<size_t>(kTileK / 2, kTaskBytes / (2 * N)), cancel, [&](size_t p0, size_t p1) {
    const size_t k0 = 2 * p0, k1 = std::min(K, 2 * p1);
    std::memset(out + k0 * N / 2, 0, (k1 * N + 1) / 2 - k0 * N / 2);
    for (size_t kt = k0; kt < k1; kt += kTileK) {
      const size_t kEnd = std::min(k1, kt + kTileK);
      for (size_t n = 0; n < N; n++) {
        const uint8_t* q = codes + n * K;
        for (size_t k = kt; k < kEnd; k++) {
          if (q[k] >> 4) throwBadCode("packInt4Transposed", n, k, q[k], 4);
          const unsigned v = static_cast<unsigned>(q[k] - offset) & 0xF;
          const size_t e = k * N + n;
          out[e >> 1] = static_cast<uint8_t>(out[e >> 1] | (v << ((e & 1) * 4)));
        }
      }
    }
  });
}

void unpackInt4Transposed(const uint8_t* packed, size_t N, size_t K, int offset, uint8_t* codes,
                          const CancelFlag* cancel) {
  if (N == 0 || K == 0) return;
  forTasks(K, std::max<size_t>(kTileK, kTaskBytes / N), cancel, [&](size_t k0, size_t k1) {
    for (size_t kt = k0; kt < k1; kt += kTileK) {
      const size_t kEnd = std::min(k1, kt + kTileK);
      for (size_t n = 0; n < N; n++) {
        for (size_t k = kt; k < kEnd; k++) {
          const size_t e = k * N + n;
          const unsigned v = (packed[e >> 1] >> ((e & 1) * 4)) & 0xF;
          codes[n * K + k] = static_cast<uint8_t>((v + static_cast<unsigned>(offset)) & 0xF);
        }
      }
    }
  });
}

void packInt8Transposed(const uint8_t* codes, size_t N, size_t K, int offset, uint8_t* out, const CancelFlag* cancel) {
  if (N == 0 || K == 0) return;
  forTasks(K, std::max<size_t>(kTileK, kTaskBytes / N), cancel, [&](size_t k0, size_t k1) {
    for (size_t kt = k0; kt < k1; kt += kTileK) {
      const size_t kEnd = std::min(k1, kt + kTileK);
      for (size_t n = 0; n < N; n++) {
        const uint8_t* q = codes + n * K;
        for (size_t k = kt; k < kEnd; k++) out[k * N + n] = static_cast<uint8_t>(q[k] - offset);
      }
    }
  });
}

}  // namespace ql
