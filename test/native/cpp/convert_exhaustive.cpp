// Every fp32 bit pattern (2^32) through fp32 -> fp16 and fp32 -> bf16, and every 16-bit pattern
// through fp16/bf16 -> fp32: the dispatching kernels (SIMD where the CPU has it) must equal the
// scalar ones bit for bit. The scalar ones are checked against the TypeScript references by
// convert.test.ts. Built and run by exhaustive.test.ts (QUANTLENS_EXHAUSTIVE=1), or by hand:
//   g++ -std=c++17 -O2 -pthread -ffp-contract=off test/native/cpp/convert_exhaustive.cpp
//       native-kernels/core/*.cpp -o /tmp/convert_exhaustive && /tmp/convert_exhaustive
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "../../../native-kernels/core/convert.h"
#include "../../../native-kernels/core/cpu.h"
#include "../../../native-kernels/core/thread_pool.h"

namespace {

constexpr uint64_t kChunk = uint64_t{1} << 20;

struct Failure {
  std::atomic<bool> found{false};
  uint32_t input = 0, fast = 0, scalar = 0;
};

void checkFromFloat(ql::Conversion kind, const char* name) {
  Failure fail;
  const uint64_t chunks = (uint64_t{1} << 32) / kChunk;
  ql::pool().parallelFor(chunks, [&](size_t c) {
    std::vector<uint32_t> in(kChunk);
    std::vector<uint16_t> fast(kChunk), slow(kChunk);
    for (uint64_t i = 0; i < kChunk; i++) in[i] = static_cast<uint32_t>(c * kChunk + i);
    ql::convert(kind, in.data(), fast.data(), kChunk);
    ql::convertScalar(kind, in.data(), slow.data(), kChunk);
    if (std::memcmp(fast.data(), slow.data(), kChunk * 2) != 0) {
      for (uint64_t i = 0; i < kChunk; i++) {
        if (fast[i] != slow[i] && !fail.found.exchange(true)) {
          fail.input = in[i], fail.fast = fast[i], fail.scalar = slow[i];
          break;
        }
      }
    }
  });
  if (fail.found) {
    std::printf("FAIL %s: input 0x%08x -> 0x%04x, scalar 0x%04x\n", name, fail.input, fail.fast, fail.scalar);
    std::exit(1);
  }
  std::printf("ok   %s: all 2^32 inputs (%s)\n", name, ql::simdName().c_str());
}

void checkToFloat(ql::Conversion kind, const char* name) {
  std::vector<uint16_t> in(65536);
  for (uint32_t i = 0; i < 65536; i++) in[i] = static_cast<uint16_t>(i);
  std::vector<uint32_t> fast(65536), slow(65536);
  ql::convert(kind, in.data(), fast.data(), 65536);
  ql::convertScalar(kind, in.data(), slow.data(), 65536);
  for (uint32_t i = 0; i < 65536; i++) {
    if (fast[i] != slow[i]) {
      std::printf("FAIL %s: input 0x%04x -> 0x%08x, scalar 0x%08x\n", name, i, fast[i], slow[i]);
      std::exit(1);
    }
  }
  std::printf("ok   %s: all 2^16 inputs (%s)\n", name, ql::simdName().c_str());
}

}  // namespace

int main() {
  checkToFloat(ql::Conversion::F16ToF32, "f16_to_f32");
  checkToFloat(ql::Conversion::Bf16ToF32, "bf16_to_f32");
  checkFromFloat(ql::Conversion::F32ToF16, "f32_to_f16");
  checkFromFloat(ql::Conversion::F32ToBf16, "f32_to_bf16");
  return 0;
}
