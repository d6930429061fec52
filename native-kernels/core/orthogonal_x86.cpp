// AVX2 build of the dense-factor batch (orthogonal_kernels.h): the same source as the scalar one,
// force-inlined here so it compiles with AVX2 (4 doubles per instruction across the batch's
// independent lanes; no FMA, so every lane rounds exactly as the scalar path).
#include "kernels_x86.h"

#if QL_X86_SIMD
#include "orthogonal_kernels.h"

namespace ql {

QL_TARGET_AVX2 void orthoChainAvx2x8(double* buf, size_t d, const double* reflectors, const double* D, bool inverse) {
  chainBatch<8>(buf, d, reflectors, D, inverse);
}
QL_TARGET_AVX2 void orthoChainAvx2x16(double* buf, size_t d, const double* reflectors, const double* D, bool inverse) {
  chainBatch<16>(buf, d, reflectors, D, inverse);
}
QL_TARGET_AVX2 void orthoChainAvx2x32(double* buf, size_t d, const double* reflectors, const double* D, bool inverse) {
  chainBatch<32>(buf, d, reflectors, D, inverse);
}

}  // namespace ql
#endif
