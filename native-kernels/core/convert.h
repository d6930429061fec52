// fp16 / bf16 <-> fp32 array conversions, bit-identical to the TypeScript references.
#pragma once

#include <cstddef>
#include <cstdint>

#include "cancel.h"

namespace ql {

enum class Conversion { F16ToF32, Bf16ToF32, F32ToF16, F32ToBf16 };

/** Bytes per element on each side: {source, destination}. */
struct ConversionSizes {
  size_t src;
  size_t dst;
};
ConversionSizes conversionSizes(Conversion kind);

/**
 * Convert n elements from src to dst (which must not overlap). Large arrays are split into
 * blocks over the thread pool; `cancel` is polled between blocks (then Cancelled is thrown and
 * dst is partly written).
 */
void convert(Conversion kind, const void* src, void* dst, size_t n, const CancelFlag* cancel = nullptr);

/** The portable path alone, one thread: what the SIMD paths are tested against. */
void convertScalar(Conversion kind, const void* src, void* dst, size_t n);

}  // namespace ql
