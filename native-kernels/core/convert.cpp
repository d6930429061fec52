#include "convert.h"

#include <algorithm>
#include <cstring>

#include "convert_scalar.h"
#include "cpu.h"
#include "kernels_x86.h"
#include "thread_pool.h"

namespace ql {

namespace {

// Elements per thread-pool task, and the size below which one thread does it all (waking the
// pool costs tens of microseconds; measured break-even between 2^18 and 2^19 elements).
constexpr size_t kConvertBlock = size_t{1} << 16;
constexpr size_t kConvertParallelMin = size_t{1} << 19;

// Float data is handled as bit patterns (uint32_t) throughout: these buffers come from JS and
// only their bits matter. memcpy keeps the scalar code free of aliasing questions.
void f16ToF32Scalar(const uint16_t* src, uint8_t* dst, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const uint32_t bits = halfToFloatBits(src[i]);
    std::memcpy(dst + 4 * i, &bits, 4);
  }
}

void bf16ToF32Scalar(const uint16_t* src, uint8_t* dst, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const uint32_t bits = bf16ToFloatBits(src[i]);
    std::memcpy(dst + 4 * i, &bits, 4);
  }
}

void f32ToF16Scalar(const uint8_t* src, uint16_t* dst, size_t n) {
  for (size_t i = 0; i < n; i++) {
    uint32_t bits;
    std::memcpy(&bits, src + 4 * i, 4);
    dst[i] = floatBitsToHalf(bits);
  }
}

void f32ToBf16Scalar(const uint8_t* src, uint16_t* dst, size_t n) {
  for (size_t i = 0; i < n; i++) {
    uint32_t bits;
    std::memcpy(&bits, src + 4 * i, 4);
    dst[i] = floatBitsToBf16(bits);
  }
}

/** One contiguous range [begin, begin+n), on the best path this CPU allows. */
void convertRange(Conversion kind, const void* src, void* dst, size_t begin, size_t n, bool simd) {
  const auto* s8 = static_cast<const uint8_t*>(src);
  auto* d8 = static_cast<uint8_t*>(dst);
  (void)simd;  // only read where SIMD paths are compiled in
  switch (kind) {
    case Conversion::F16ToF32: {
      const auto* s = reinterpret_cast<const uint16_t*>(s8) + begin;
#if QL_X86_SIMD
      if (simd && useF16c()) return f16ToF32F16c(s, reinterpret_cast<uint32_t*>(d8) + begin, n);
#endif
      return f16ToF32Scalar(s, d8 + 4 * begin, n);
    }
    case Conversion::Bf16ToF32: {
      const auto* s = reinterpret_cast<const uint16_t*>(s8) + begin;
#if QL_X86_SIMD
      if (simd && useAvx2Fma()) return bf16ToF32Avx2(s, reinterpret_cast<uint32_t*>(d8) + begin, n);
#endif
      return bf16ToF32Scalar(s, d8 + 4 * begin, n);
    }
    case Conversion::F32ToF16: {
      auto* d = reinterpret_cast<uint16_t*>(d8) + begin;
#if QL_X86_SIMD
      if (simd && useF16c()) return f32ToF16F16c(reinterpret_cast<const uint32_t*>(s8) + begin, d, n);
#endif
      return f32ToF16Scalar(s8 + 4 * begin, d, n);
    }
    case Conversion::F32ToBf16: {
      auto* d = reinterpret_cast<uint16_t*>(d8) + begin;
#if QL_X86_SIMD
      if (simd && useAvx2Fma()) return f32ToBf16Avx2(reinterpret_cast<const uint32_t*>(s8) + begin, d, n);
#endif
      return f32ToBf16Scalar(s8 + 4 * begin, d, n);
    }
  }
}

}  // namespace

ConversionSizes conversionSizes(Conversion kind) {
  switch (kind) {
    case Conversion::F16ToF32:
    case Conversion::Bf16ToF32:
      return {2, 4};
    case Conversion::F32ToF16:
    case Conversion::F32ToBf16:
      return {4, 2};
  }
  return {0, 0};
}

void convertScalar(Conversion kind, const void* src, void* dst, size_t n) {
  convertRange(kind, src, dst, 0, n, false);
}

void convert(Conversion kind, const void* src, void* dst, size_t n, const CancelFlag* cancel) {
  throwIfCancelled(cancel);
  if (n < kConvertParallelMin) {
    convertRange(kind, src, dst, 0, n, true);
    return;
  }
  const size_t blocks = (n + kConvertBlock - 1) / kConvertBlock;
  pool().parallelFor(blocks, [&](size_t b) {
    if (isCancelled(cancel)) return;
    const size_t begin = b * kConvertBlock;
    convertRange(kind, src, dst, begin, std::min(kConvertBlock, n - begin), true);
  });
  throwIfCancelled(cancel);
}

}  // namespace ql
