#include "gptq_panel.h"

namespace ql {

void gptqPanelScalar(const GptqPanel& p) {
  const GptqLayout& L = *p.L;
  gptqLoadPanel(p);
  float s[kGptqLanes], z[kGptqLanes], e[kGptqLanes];
  for (size_t i = p.i1; i < p.i2; i++) {
    if (L.mode == GptqGroupMode::Dynamic && i % L.G == 0) gptqFindDynamicGroup(p, i);
    if (L.groupStart && L.groupStart[i]) gptqFindStaticGroup(p, i);
    gptqLaneParams(p, i, s, z);
    // q = quant(w_i); err_i = (w_i − q) / U_ii;  w[i+1:i2] −= err_i · U[i, i+1:i2]
    const float* Ui = p.U + i * L.cols;
    const float d = Ui[i];
    const float* w = p.wt + (i - p.i1) * kGptqLanes;
    float* et = p.errT + (i - p.i1) * p.ldErr;
    const size_t column = static_cast<size_t>(L.perm[i]);
    for (size_t l = 0; l < kGptqLanes; l++) {
      const uint8_t q = rtn_code(w[l], s[l], z[l], L.maxq);
      e[l] = (w[l] - rtn_dequant(q, s[l], z[l])) / d;
      et[l] = e[l];
      if (l < p.lanes) p.codes[l * L.cols + column] = q;
    }
    for (size_t j = i + 1; j < p.i2; j++) {
      const float u = Ui[j];
      float* wj = p.wt + (j - p.i1) * kGptqLanes;
      for (size_t l = 0; l < kGptqLanes; l++) wj[l] -= e[l] * u;
    }
  }
}

}  // namespace ql
