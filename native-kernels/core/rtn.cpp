#include "rtn.h"

#include <algorithm>
#include <cfloat>
#include <stdexcept>
#include <string>
#include <vector>

#include "cpu.h"
#include "kernels_x86.h"
#include "thread_pool.h"

namespace ql {

namespace {

// A pool task should be tens of microseconds or more: about this many weights per task.
constexpr size_t kTaskElements = size_t{1} << 16;

/** min and max of w[0], w[stride], …; false (and nothing else meaningful) if one is NaN/±Inf. */
bool groupRangeScalar(const float* w, size_t n, size_t stride, float* wmin, float* wmax) {
  float lo = 1.0f / 0.0f, hi = -1.0f / 0.0f;
  bool finite = true;
  for (size_t i = 0; i < n; i++) {
    const float v = w[i * stride];
    finite &= std::isfinite(v);
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  *wmin = lo;
  *wmax = hi;
  return finite;
}

bool groupRange(const float* w, size_t n, size_t stride, float* wmin, float* wmax) {
#if QL_X86_SIMD
  if (stride == 1 && useAvx2Fma()) return rtnRangeAvx2(w, n, wmin, wmax);
#endif
  return groupRangeScalar(w, n, stride, wmin, wmax);
}

/** The clipping range [xmin, xmax] ∋ 0 of the min/max rule, with GPTQ's all-zero guard. */
void clipRange(float wmin, float wmax, bool symmetric, float* xmin, float* xmax) {
  // Written with comparisons (not std::min) so −0 never survives: xmin, xmax are +0 or nonzero.
  float lo = wmin < 0.0f ? wmin : 0.0f;
  float hi = wmax > 0.0f ? wmax : 0.0f;
  if (symmetric) {
    const float a = -lo > hi ? -lo : hi;
    lo = -a;
    hi = a;
  }
  *xmin = lo;
  *xmax = hi;
}

/** scale and zero of the range [xmin, xmax]; false when the scale is not a normal float. */
bool paramsOfRange(float xmin, float xmax, bool symmetric, int maxq, float* scale, float* zero) {
  const float s = (xmax - xmin) / static_cast<float>(maxq);
  if (!(s >= FLT_MIN) || !std::isfinite(s)) return false;
  *scale = s;
  *zero = symmetric ? static_cast<float>((maxq + 1) / 2) : round_half_even(-xmin / s);
  return true;
}

/** The min/max parameters of a group whose range is known (GPTQ's guard applied). */
void minMaxParams(float wmin, float wmax, QuantSpec spec, float* xmin, float* xmax, float* scale, float* zero) {
  const int maxq = rtn_maxq(spec.bits);
  clipRange(wmin, wmax, spec.symmetric, xmin, xmax);
  if (paramsOfRange(*xmin, *xmax, spec.symmetric, maxq, scale, zero)) return;
  if (std::isinf((*xmax - *xmin) / static_cast<float>(maxq)))
    throw std::domain_error("rtn_params: group range overflows float (|w| above ~1.7e38)");
  // All zero, or so small the scale is not a normal float: GPTQ's xmin = −1, xmax = +1.
  *xmin = -1.0f;
  *xmax = 1.0f;
  paramsOfRange(*xmin, *xmax, spec.symmetric, maxq, scale, zero);
}

/** Σ |w − dq|^norm in double for one candidate (scale, zero). */
double groupError(const float* w, size_t n, size_t stride, float scale, float zero, int maxq, double norm) {
  double err = 0;
  for (size_t i = 0; i < n; i++) {
    const float v = w[i * stride];
    const float d = std::fabs(rtn_dequant(rtn_code(v, scale, zero, maxq), scale, zero) - v);
    err += norm == 2.0 ? static_cast<double>(d) * d : std::pow(static_cast<double>(d), norm);
  }
  return err;
}

/** GPTQ's MSE search over shrunk ranges; (scale, zero) hold the min/max values on entry. */
void clipSearch(const float* w, size_t n, size_t stride, QuantSpec spec, const ClipSearch& clip, float xmin,
                float xmax, float* scale, float* zero) {
  const int maxq = rtn_maxq(spec.bits);
  const int candidates = std::max(1, static_cast<int>(std::floor(clip.maxShrink * clip.grid)));
  double best = 1.0 / 0.0;
  for (int i = 0; i < candidates; i++) {
    const float p = static_cast<float>(1.0 - static_cast<double>(i) / clip.grid);
    float s, z;
    if (!paramsOfRange(p * xmin, p * xmax, spec.symmetric, maxq, &s, &z)) continue;
    const double err = groupError(w, n, stride, s, z, maxq, clip.norm);
    if (err < best) {
      best = err;
      *scale = s;
      *zero = z;
    }
  }
}

void checkSpec(QuantSpec spec, const char* fn) {
  if (!rtn_bits_supported(spec.bits))
    throw std::invalid_argument(std::string(fn) + ": bits must be 2, 3, 4 or 8, got " + std::to_string(spec.bits));
}

void checkClip(const ClipSearch& clip, const char* fn) {
  if (clip.grid < 0 || !(clip.maxShrink > 0 && clip.maxShrink < 1) || !(clip.norm > 0) || !std::isfinite(clip.norm))
    throw std::invalid_argument(std::string(fn) + ": clip needs grid >= 0, 0 < maxShrink < 1, norm > 0");
}

/** One row's codes for one group, contiguous. */
void groupCodes(const float* w, size_t n, float scale, float zero, int maxq, uint8_t* q) {
#if QL_X86_SIMD
  if (useAvx2Fma()) return rtnCodesAvx2(w, n, scale, zero, maxq, q);
#endif
  for (size_t i = 0; i < n; i++) q[i] = rtn_code(w[i], scale, zero, maxq);
}

[[noreturn]] void throwNonFinite(const float* row, size_t begin, size_t end, size_t r) {
  size_t c = begin;
  while (c < end && std::isfinite(row[c])) c++;
  const char* what = std::isnan(row[c]) ? "NaN" : "infinite";
  throw std::domain_error("rtn_quantize: W[" + std::to_string(r) + ", " + std::to_string(c) + "] is " + what +
                          "; quantize finite weights only");
}

}  // namespace

void rtn_params(const float* w, size_t n, size_t stride, QuantSpec spec, const ClipSearch& clip, float* scale,
                float* zero) {
  checkSpec(spec, "rtn_params");
  float wmin, wmax, xmin, xmax;
  if (!groupRange(w, n, stride, &wmin, &wmax)) throw std::domain_error("rtn_params: weights must be finite");
  minMaxParams(wmin, wmax, spec, &xmin, &xmax, scale, zero);
  if (clip.grid > 0) {
    checkClip(clip, "rtn_params");
    clipSearch(w, n, stride, spec, clip, xmin, xmax, scale, zero);
  }
}

void rtn_params_shrunk(const float* w, size_t n, size_t stride, QuantSpec spec, float shrink, float* scale,
                       float* zero) {
  checkSpec(spec, "rtn_params");
  float wmin, wmax, xmin, xmax;
  if (!groupRange(w, n, stride, &wmin, &wmax)) throw std::domain_error("rtn_params: weights must be finite");
  minMaxParams(wmin, wmax, spec, &xmin, &xmax, scale, zero);
  if (shrink == 1.0f) return;
  float s, z;
  if (paramsOfRange(shrink * xmin, shrink * xmax, spec.symmetric, rtn_maxq(spec.bits), &s, &z)) {
    *scale = s;
    *zero = z;
  }
}

void rtn_params(const float* w, size_t n, size_t stride, QuantSpec spec, float* scale, float* zero) {
  rtn_params(w, n, stride, spec, ClipSearch{}, scale, zero);
}

void rtn_quantize(const float* W, size_t rows, size_t cols, size_t group, QuantSpec spec, uint8_t* codes,
                  float* scales, float* zeros, const CancelFlag* cancel, const ClipSearch& clip) {
  checkSpec(spec, "rtn_quantize");
  if (clip.grid > 0) checkClip(clip, "rtn_quantize");
  throwIfCancelled(cancel);
  if (rows == 0 || cols == 0) return;
  const size_t g = group == 0 || group > cols ? cols : group;
  const size_t ngroups = rtn_groups(cols, group);
  const int maxq = rtn_maxq(spec.bits);
  const size_t rowsPerTask = clip.grid > 0 ? 1 : std::max<size_t>(1, kTaskElements / cols);
  const size_t tasks = (rows + rowsPerTask - 1) / rowsPerTask;
  const auto quantizeRows = [&](size_t t) {
    if (isCancelled(cancel)) return;
    const size_t rEnd = std::min(rows, (t + 1) * rowsPerTask);
    for (size_t r = t * rowsPerTask; r < rEnd; r++) {
      const float* row = W + r * cols;
      for (size_t k = 0; k < ngroups; k++) {
        const size_t begin = k * g, n = std::min(g, cols - begin);
        float wmin, wmax, xmin, xmax, scale, zero;
        if (!groupRange(row + begin, n, 1, &wmin, &wmax)) throwNonFinite(row, begin, begin + n, r);
        minMaxParams(wmin, wmax, spec, &xmin, &xmax, &scale, &zero);
        if (clip.grid > 0) clipSearch(row + begin, n, 1, spec, clip, xmin, xmax, &scale, &zero);
        scales[r * ngroups + k] = scale;
        zeros[r * ngroups + k] = zero;
        groupCodes(row + begin, n, scale, zero, maxq, codes + r * cols + begin);
      }
    }
  };
  if (tasks == 1) {
    quantizeRows(0);
  } else {
    pool().parallelFor(tasks, quantizeRows);
  }
  throwIfCancelled(cancel);
}

void rtn_dequantize(const uint8_t* codes, const float* scales, const float* zeros, size_t rows, size_t cols,
                    size_t group, float* out, const CancelFlag* cancel) {
  throwIfCancelled(cancel);
  if (rows == 0 || cols == 0) return;
  const size_t g = group == 0 || group > cols ? cols : group;
  const size_t ngroups = rtn_groups(cols, group);
  const size_t rowsPerTask = std::max<size_t>(1, kTaskElements / cols);
  const size_t tasks = (rows + rowsPerTask - 1) / rowsPerTask;
  const auto dequantizeRows = [&](size_t t) {
    if (isCancelled(cancel)) return;
    const size_t rEnd = std::min(rows, (t + 1) * rowsPerTask);
    for (size_t r = t * rowsPerTask; r < rEnd; r++) {
      for (size_t k = 0; k < ngroups; k++) {
        const size_t begin = k * g, n = std::min(g, cols - begin);
        const float scale = scales[r * ngroups + k], zero = zeros[r * ngroups + k];
        const uint8_t* q = codes + r * cols + begin;
        float* o = out + r * cols + begin;
#if QL_X86_SIMD
        if (useAvx2Fma()) {
          rtnDequantAvx2(q, n, scale, zero, o);
          continue;
        }
#endif
        for (size_t i = 0; i < n; i++) o[i] = rtn_dequant(q[i], scale, zero);
      }
    }
  };
  if (tasks == 1) {
    dequantizeRows(0);
  } else {
    pool().parallelFor(tasks, dequantizeRows);
  }
  throwIfCancelled(cancel);
}

}  // namespace ql
