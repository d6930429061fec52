// AVX2 build of the dense-factor batch (orthogonal_kernels.h): the same source as the scalar one,
// force-inlined here so it compiles with AVX2 (4 doubles per instruction across the batch's
// independent lanes; no FMA, so every lane rounds exactly as the scalar path).
#include "kernels_x86.h"

#if QL_X86_SIMD
#include "orthogonal_kernels.h"

namespace ql {

QL_TARGET_AVX2 void orthoChainAvx2(double* buf, size_t d, const double* reflectors, const double* D, bool inverse) {
  chainBatch(buf, d, reflectors, D, inverse);
}

}  // namespace ql
#endif
