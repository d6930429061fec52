// The inner loop of GPTQ (internal to gptq.cpp and gptq_x86.cpp): a panel of kGptqLanes rows
// through one lazy batch of columns, quantizing column by column and spreading each column's
// rounding error over the rest of the batch.
//
// Rows are independent, so a panel keeps its rows side by side: the batch's columns are copied
// column-major (`wt`, lane = row fastest), and one column of the panel is one (or two) SIMD
// vectors. That turns GPTQ's per-row chain of dependent divisions into vector work shared by
// kGptqLanes rows, and the error update into one broadcast multiply-subtract per column.
//
// The scalar kernel (gptq.cpp) and the AVX2 one (gptq_x86.cpp) do the same float operations in
// the same order (division, ties-to-even rounding, separate multiply and subtract, no FMA), so
// they agree bit for bit.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "rtn.h"

namespace ql {

/** Rows per panel: two 8-float AVX2 vectors. */
constexpr size_t kGptqLanes = 16;

/** Where column p (in quantization order) takes its scale and zero from. */
enum class GptqGroupMode {
  PerChannel,  // one group per row, parameters up front from the whole row
  Static,      // parameters up front per natural group; column p uses group perm[p] / G
  Dynamic,     // parameters when the group starts (p % G == 0), from the error-updated weights
};

struct GptqLayout {
  size_t rows;
  size_t cols;
  size_t G;   // group width in columns (cols for per-channel)
  size_t ng;  // groups per row
  GptqGroupMode mode;
  const int32_t* perm;  // [cols], perm[p] = original column
  QuantSpec spec;
  int maxq;
  bool batchStart;  // groups: parameters from the lazy batch's starting weights (gptq.py)
  // Static groups with batchStart: invperm[j] = position of column j; groupStart[p] = 1 where
  // position p is the first of its group to be quantized (the group's parameters are taken there).
  const int32_t* invperm;
  const char* groupStart;

  size_t groupOf(size_t p) const {
    switch (mode) {
      case GptqGroupMode::PerChannel: return 0;
      case GptqGroupMode::Static: return static_cast<size_t>(perm[p]) / G;
      case GptqGroupMode::Dynamic: return p / G;
    }
    return 0;
  }
};

/**
 * One panel: rows r0 .. r0 + lanes − 1 (lanes ≤ kGptqLanes; missing lanes are padded with zero
 * weights) through the lazy batch [i1, i2). Pointers are already offset to row r0:
 *   W       [lanes × cols]  the working weights (row stride cols), quantization order; columns
 *           ≥ i2 are read (dynamic groups reaching past the batch), never written
 *   U       [cols × cols]   the upper factor of (H + λI)⁻¹ (row stride cols)
 *   errT    out: Err1 transposed, errT[(i − i1)·ldErr + l] = (w_i − q_i) / U_ii of lane l (all
 *           kGptqLanes lanes are written, padded ones with 0)
 *   codes   out: [lanes × cols] (row stride cols), ORIGINAL column order
 *   scales, zeros  [lanes × ng]: read (per-channel, static), written at group starts (dynamic)
 *   wt      scratch [(i2 − i1) × kGptqLanes]; group: scratch [G]
 */
struct GptqPanel {
  const GptqLayout* L;
  const float* W;
  size_t lanes;
  const float* U;
  size_t i1;
  size_t i2;
  float* errT;
  size_t ldErr;
  uint8_t* codes;
  float* scales;
  float* zeros;
  float* wt;
  float* group;
  /** [lanes] per-row range shrink (GptqOptions::rowShrink offset to r0), or nullptr. */
  const float* shrink;
};

/** Lane l's range shrink (1 without clipping). */
inline float gptqLaneShrink(const GptqPanel& p, size_t l) { return p.shrink ? p.shrink[l] : 1.0f; }

/** wt ← the panel's batch columns, column-major; padded lanes 0. */
inline void gptqLoadPanel(const GptqPanel& p) {
  const size_t cols = p.L->cols;
  for (size_t j = p.i1; j < p.i2; j++) {
    float* dst = p.wt + (j - p.i1) * kGptqLanes;
    for (size_t l = 0; l < kGptqLanes; l++) dst[l] = l < p.lanes ? p.W[l * cols + j] : 0.0f;
  }
}

/**
 * A dynamic group starts at column i: each lane's scale/zero from its CURRENT weights
 * (gptq.py: quantizer.find_params(W[:, i:i+groupsize])). Columns [i, i2) are in wt with every
 * earlier column's update applied; columns past i2 still lack those of this batch's columns
 * [i1, i), which are added here (the batch's GEMM brings them to W only later). gptq.py reads
 * those columns stale; doing it right keeps the result independent of the batch width.
 */
inline void gptqFindDynamicGroup(const GptqPanel& p, size_t i) {
  const GptqLayout& L = *p.L;
  const size_t ge = std::min(i + L.G, L.cols);
  const size_t inBatch = std::min(ge, p.i2);
  if (L.batchStart) {
    // gptq.py exactly: find_params(W[:, i:i+groupsize]) reads W as it was when the batch began
    // (W1, the batch's working copy, carries the in-batch updates). W here is that state for
    // every column: the batch's own columns are updated in wt, later ones only after the batch.
    for (size_t l = 0; l < p.lanes; l++) {
      rtn_params_shrunk(p.W + l * L.cols + i, ge - i, 1, L.spec, gptqLaneShrink(p, l), p.scales + l * L.ng + i / L.G,
                        p.zeros + l * L.ng + i / L.G);
    }
    return;
  }
  for (size_t l = 0; l < p.lanes; l++) {
    for (size_t j = i; j < inBatch; j++) p.group[j - i] = p.wt[(j - p.i1) * kGptqLanes + l];
    for (size_t j = p.i2; j < ge; j++) {
      float pending = 0;
      for (size_t t = p.i1; t < i; t++) pending += p.errT[(t - p.i1) * p.ldErr + l] * p.U[t * L.cols + j];
      p.group[j - i] = p.W[l * L.cols + j] - pending;
    }
    rtn_params_shrunk(p.group, ge - i, 1, L.spec, gptqLaneShrink(p, l), p.scales + l * L.ng + i / L.G,
                      p.zeros + l * L.ng + i / L.G);
  }
}

/**
 * A static group (a run of ORIGINAL columns) starts at position i (its first column in
 * act-order): each lane's scale/zero from the group's weights as they were when the batch began.
 * Every other column of the group comes later, so W holds exactly that state for all of them.
 */
inline void gptqFindStaticGroup(const GptqPanel& p, size_t i) {
  const GptqLayout& L = *p.L;
  const size_t g = static_cast<size_t>(L.perm[i]) / L.G;
  const size_t c0 = g * L.G, c1 = std::min(c0 + L.G, L.cols);
  for (size_t l = 0; l < p.lanes; l++) {
    const float* w = p.W + l * L.cols;
    for (size_t c = c0; c < c1; c++) p.group[c - c0] = w[L.invperm[c]];
    rtn_params_shrunk(p.group, c1 - c0, 1, L.spec, gptqLaneShrink(p, l), p.scales + l * L.ng + g, p.zeros + l * L.ng + g);
  }
}

/** Each lane's scale and zero for column i (padded lanes: 1 and 0, so they quantize 0 to 0). */
inline void gptqLaneParams(const GptqPanel& p, size_t i, float* s, float* z) {
  const GptqLayout& L = *p.L;
  const size_t g = L.groupOf(i);
  for (size_t l = 0; l < kGptqLanes; l++) {
    s[l] = l < p.lanes ? p.scales[l * L.ng + g] : 1.0f;
    z[l] = l < p.lanes ? p.zeros[l * L.ng + g] : 0.0f;
  }
}

/** The portable kernel; the reference for the AVX2 one. */
void gptqPanelScalar(const GptqPanel& p);

}  // namespace ql
