// The CUDA backend against the CPU kernels, through the addon's own loader (core/cuda_backend.cpp):
//
//   selftest info            {"available": …, "status": "…"}
//   selftest run [--large]   one JSON line per case, then a summary; exit 1 if any case fails,
//                            exit 0 with {"skipped": true, …} when the backend is not available
//
// Built by test/native/cuda.test.ts with g++ against the addon's core objects; the library is
// picked as the addon picks it (QUANTLENS_CUDA_LIB to choose: the real one on a GPU machine, or
// libquantlens_cuda_emu.so, the same code emulated on the CPU, anywhere).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "../core/cuda_backend.h"
#include "../core/gemm.h"
#include "../core/hadamard.h"
#include "../core/hessian.h"

namespace {

// Named tolerances (the same as test/native's for the CPU kernels).
/** |H − H_ref| ≤ HESSIAN_TOL·√(H_ii·H_jj): fp32 chunk sums of ≤ 256 FMAs, fp64 across chunks. */
constexpr double HESSIAN_TOL = 1e-6;
/** |C − C_ref| ≤ SGEMM_TOL·(Σ|a·b| + |C0|): one fp32 FMA chain per element. */
constexpr double SGEMM_TOL = 4e-6;
/** The emulated GPTQ layer: |W − W_ref| ≤ GPTQ_LOOP_TOL·(1 + |W_ref|) after all batches. */
constexpr double GPTQ_LOOP_TOL = 1e-4;

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string jsonEscape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      o += '\\';
      o += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      o += ' ';
    } else {
      o += c;
    }
  }
  return o;
}

int g_failures = 0, g_cases = 0;

void report(const std::string& name, bool ok, const std::string& detail, double gpuSeconds, double cpuSeconds) {
  g_cases++;
  if (!ok) g_failures++;
  std::printf("{\"case\": \"%s\", \"ok\": %s, \"detail\": \"%s\", \"gpu_s\": %.6f, \"cpu_s\": %.6f}\n",
              jsonEscape(name).c_str(), ok ? "true" : "false", jsonEscape(detail).c_str(), gpuSeconds, cpuSeconds);
  std::fflush(stdout);
}

std::vector<float> gaussian(size_t n, unsigned seed, float mean = 0, float std = 1) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(mean, std);
  std::vector<float> x(n);
  for (float& v : x) v = d(rng);
  return x;
}

// ---- Hessian -------------------------------------------------------------------------------------

void hessianCase(size_t n, size_t rows, size_t ldx, int calls, unsigned seed) {
  const std::string name = "hessian n=" + std::to_string(n) + " rows=" + std::to_string(rows) +
                           (ldx != n ? " ldx=" + std::to_string(ldx) : "") + (calls > 1 ? " x" + std::to_string(calls) : "");
  std::vector<double> gpu(n * n, 0.0), cpu(n * n, 0.0), ref(n * n, 0.0);
  double tg = 0, tc = 0;
  for (int c = 0; c < calls; c++) {
    const std::vector<float> X = gaussian(rows * ldx, seed + c, 0.5f, 1.0f);
    const std::vector<double> before = gpu;
    auto t0 = Clock::now();
    if (!ql::cuda::hessian_update(gpu.data(), n, X.data(), rows, ldx)) {
      report(name, false, "returned false (H " + std::string(gpu == before ? "untouched" : "MODIFIED") + "): " + ql::cuda::lastError(), 0, 0);
      return;
    }
    tg += since(t0);
    t0 = Clock::now();
    ql::hessian_update(cpu.data(), n, X.data(), rows, ldx);
    tc += since(t0);
    if (n <= 512) ql::hessianUpdateNaive(ref.data(), n, X.data(), rows, ldx);
  }
  double worst = 0;
  std::string bad;
  for (size_t i = 0; i < n && bad.empty(); i++) {
    for (size_t j = 0; j < n; j++) {
      const std::vector<double>& r = n <= 512 ? ref : cpu;
      const double scale = std::sqrt(r[i * n + i] * r[j * n + j]);
      const double err = std::fabs(gpu[i * n + j] - r[i * n + j]) / scale;
      const double errCpu = std::fabs(gpu[i * n + j] - cpu[i * n + j]) / scale;
      worst = std::max(worst, std::max(err, errCpu));
      if (!(err <= HESSIAN_TOL) || !(errCpu <= 2 * HESSIAN_TOL)) {
        bad = "H[" + std::to_string(i) + "][" + std::to_string(j) + "] = " + std::to_string(gpu[i * n + j]) +
              ", expected " + std::to_string(r[i * n + j]);
        break;
      }
      if (gpu[i * n + j] != gpu[j * n + i]) {
        bad = "H[" + std::to_string(i) + "][" + std::to_string(j) + "] != H[j][i]";
        break;
      }
    }
  }
  char detail[96];
  std::snprintf(detail, sizeof detail, "max rel err %.3g (tol %.0e)", worst, HESSIAN_TOL);
  report(name, bad.empty(), bad.empty() ? detail : bad, tg, tc);
}

// ---- GPTQ ----------------------------------------------------------------------------------------

/** Upper-triangular U [cols × cols] scaled like the factor of a well-conditioned H⁻¹. */
std::vector<float> upperFactor(size_t cols, unsigned seed) {
  std::vector<float> U = gaussian(cols * cols, seed, 0, 1.0f / std::sqrt(static_cast<float>(cols)));
  for (size_t i = 0; i < cols; i++)
    for (size_t j = 0; j < i; j++) U[i * cols + j] = 0;
  return U;
}

void gptqBlockCase(size_t rows, size_t colsRest, size_t block, unsigned seed) {
  const std::string name =
      "gptq_block_update rows=" + std::to_string(rows) + " cols=" + std::to_string(colsRest) + " block=" + std::to_string(block);
  const size_t ldw = colsRest + 3, ldErr = rows + 5, ldu = colsRest + 1;
  const std::vector<float> W0 = gaussian(rows * ldw, seed);
  const std::vector<float> E = gaussian(block * ldErr, seed + 1, 0, 0.1f);
  const std::vector<float> U = gaussian(block * ldu, seed + 2, 0, 0.1f);
  std::vector<float> gpu = W0, cpu = W0;
  auto t0 = Clock::now();
  if (!ql::cuda::gptq_block_update(gpu.data(), rows, colsRest, ldw, E.data(), ldErr, block, U.data(), ldu)) {
    report(name, false, "returned false (W " + std::string(gpu == W0 ? "untouched" : "MODIFIED") + "): " + ql::cuda::lastError(), 0, 0);
    return;
  }
  const double tg = since(t0);
  t0 = Clock::now();
  ql::sgemm(true, false, rows, colsRest, block, -1.0f, E.data(), ldErr, U.data(), ldu, 1.0f, cpu.data(), ldw);
  const double tc = since(t0);
  double worst = 0;
  std::string bad;
  for (size_t r = 0; r < rows && bad.empty(); r++) {
    for (size_t j = 0; j < ldw; j++) {
      const size_t at = r * ldw + j;
      if (j >= colsRest) {  // padding: untouched
        if (std::memcmp(&gpu[at], &W0[at], 4) != 0) bad = "padding W[" + std::to_string(r) + "][" + std::to_string(j) + "] written";
        continue;
      }
      double mag = std::fabs(W0[at]), exact = W0[at];
      for (size_t k = 0; k < block; k++) {
        const double p = static_cast<double>(E[k * ldErr + r]) * U[k * ldu + j];
        mag += std::fabs(p);
        exact -= p;
      }
      const double err = std::fabs(gpu[at] - exact) / mag, errCpu = std::fabs(gpu[at] - cpu[at]) / mag;
      worst = std::max(worst, err);
      if (!(err <= SGEMM_TOL) || !(errCpu <= 2 * SGEMM_TOL)) {
        bad = "W[" + std::to_string(r) + "][" + std::to_string(j) + "] = " + std::to_string(gpu[at]) + ", expected " +
              std::to_string(exact) + " (cpu " + std::to_string(cpu[at]) + ")";
        break;
      }
    }
  }
  char detail[96];
  std::snprintf(detail, sizeof detail, "max rel err %.3g (tol %.0e)", worst, SGEMM_TOL);
  report(name, bad.empty(), bad.empty() ? detail : bad, tg, tc);
}

/**
 * A GPTQ-shaped layer loop (the panel replaced by a smooth stand-in that reads exactly the
 * columns the real panel reads: the batch, and with groups up to G − 1 past it): the session's
 * lazy-batch updates against the same loop with the CPU sgemm, W compared at the end.
 */
void gptqSessionCase(size_t rows, size_t cols, size_t B, size_t G, unsigned seed) {
  const std::string name = "gptq session rows=" + std::to_string(rows) + " cols=" + std::to_string(cols) +
                           " B=" + std::to_string(B) + " G=" + std::to_string(G);
  const std::vector<float> W0 = gaussian(rows * cols, seed);
  const std::vector<float> U = upperFactor(cols, seed + 1);
  const size_t ldErr = rows + 7;
  double tg = 0, tc = 0;
  auto runLoop = [&](bool gpu, std::vector<float>& W, std::string* error) {
    ql::cuda::GptqSession s;
    if (gpu && !s.begin(W.data(), rows, cols, cols, U.data(), cols)) {
      *error = "begin returned false (W " + std::string(W == W0 ? "untouched" : "MODIFIED") + "): " + ql::cuda::lastError();
      return;
    }
    std::vector<float> ErrT(B * ldErr, 0.0f);
    for (size_t i1 = 0; i1 < cols; i1 += B) {
      const size_t i2 = std::min(cols, i1 + B);
      // Stand-in panel: err of column i from the column itself and the group's tail past i2.
      for (size_t r = 0; r < rows; r++) {
        float tail = 0;
        for (size_t j = i2; j < std::min(cols, i2 + G - 1); j++) tail += W[r * cols + j];
        for (size_t i = i1; i < i2; i++) {
          const float w = W[r * cols + i];
          ErrT[(i - i1) * ldErr + r] = 0.25f * w + 0.01f * tail - 0.05f * w * w;
        }
      }
      if (i2 >= cols) break;
      const auto t0 = Clock::now();
      if (gpu) {
        const size_t next = std::min(cols - i2, B + G - 1);
        if (!s.update(i1, i2, ErrT.data(), ldErr, W.data() + i2, cols, next)) {
          *error = "update: " + ql::cuda::lastError();
          return;
        }
        tg += since(t0);
      } else {
        ql::sgemm(true, false, rows, cols - i2, i2 - i1, -1.0f, ErrT.data(), ldErr, U.data() + i1 * cols + i2, cols,
                  1.0f, W.data() + i2, cols);
        tc += since(t0);
      }
    }
    if (gpu && !s.read(0, cols, W.data(), cols)) *error = "read: " + ql::cuda::lastError();
  };
  std::vector<float> gpu = W0, cpu = W0;
  std::string error;
  runLoop(true, gpu, &error);
  if (!error.empty()) {
    report(name, false, error, 0, 0);
    return;
  }
  runLoop(false, cpu, &error);
  double worst = 0;
  std::string bad;
  for (size_t e = 0; e < rows * cols; e++) {
    const double err = std::fabs(static_cast<double>(gpu[e]) - cpu[e]) / (1.0 + std::fabs(cpu[e]));
    worst = std::max(worst, err);
    if (!(err <= GPTQ_LOOP_TOL)) {
      bad = "W[" + std::to_string(e / cols) + "][" + std::to_string(e % cols) + "] = " + std::to_string(gpu[e]) +
            ", cpu loop " + std::to_string(cpu[e]);
      break;
    }
  }
  char detail[96];
  std::snprintf(detail, sizeof detail, "max rel err %.3g (tol %.0e)", worst, GPTQ_LOOP_TOL);
  report(name, bad.empty(), bad.empty() ? detail : bad, tg, tc);
}

// ---- FWHT ----------------------------------------------------------------------------------------

void fwhtCase(size_t outer, size_t d, size_t inner, unsigned seed) {
  const bool rowsForm = inner == 1;
  const std::string name = rowsForm ? "fwht rows=" + std::to_string(outer) + " n=" + std::to_string(d)
                                    : "fwht_strided outer=" + std::to_string(outer) + " d=" + std::to_string(d) +
                                          " inner=" + std::to_string(inner);
  std::vector<float> x = gaussian(outer * d * inner, seed);
  x[0] = 1e-40f;  // a subnormal survives exactly (no flush to zero)
  std::vector<float> gpu = x, cpu = x;
  auto t0 = Clock::now();
  const bool ok = rowsForm ? ql::cuda::fwht(gpu.data(), outer, d) : ql::cuda::fwht_strided(gpu.data(), outer, d, inner);
  const double tg = since(t0);
  if (!ok) {
    const bool untouched = std::memcmp(gpu.data(), x.data(), x.size() * 4) == 0;
    report(name, false, "returned false (X " + std::string(untouched ? "untouched" : "MODIFIED") + "): " + ql::cuda::lastError(), 0, 0);
    return;
  }
  t0 = Clock::now();
  if (rowsForm) {
    ql::fwht(cpu.data(), outer, d);
  } else {
    for (size_t o = 0; o < outer; o++) ql::fwhtColumns(cpu.data() + o * d * inner, d, inner, ql::fwhtNorm(d));
  }
  const double tc = since(t0);
  size_t differ = 0, first = 0;
  for (size_t e = 0; e < x.size(); e++) {
    if (std::memcmp(&gpu[e], &cpu[e], 4) != 0) {
      if (differ++ == 0) first = e;
    }
  }
  report(name, differ == 0,
         differ == 0 ? "bit-identical"
                     : std::to_string(differ) + " elements differ, first at " + std::to_string(first) + ": " +
                           std::to_string(gpu[first]) + " vs " + std::to_string(cpu[first]),
         tg, tc);
}

void fwhtNonFiniteCase(size_t rows, size_t n, size_t at, float bad) {
  const std::string name = "fwht rejects " + std::string(std::isnan(bad) ? "NaN" : "Inf") + " rows=" + std::to_string(rows) +
                           " n=" + std::to_string(n) + " at " + std::to_string(at);
  std::vector<float> x = gaussian(rows * n, 7);
  x[at] = bad;
  const std::vector<float> before = x;
  const bool ok = ql::cuda::fwht(x.data(), rows, n);
  const std::string err = ql::cuda::lastError();
  const std::string expectWhere = "X[" + std::to_string(at / n) + ", " + std::to_string(at % n) + "]";
  const bool untouched = std::memcmp(x.data(), before.data(), x.size() * 4) == 0;
  report(name, !ok && untouched && err.find(expectWhere) != std::string::npos && ql::cuda::available(),
         "returned " + std::string(ok ? "true" : "false") + ", X " + (untouched ? "untouched" : "MODIFIED") + ", error: " + err,
         0, 0);
}

void cancelCase() {
  ql::CancelFlag flag{true};
  std::vector<double> H(64 * 64, 0.0);
  const std::vector<float> X = gaussian(100 * 64, 3);
  const bool h = ql::cuda::hessian_update(H.data(), 64, X.data(), 100, 64, &flag);
  std::vector<float> x = X;
  const bool f = ql::cuda::fwht(x.data(), 100, 64, &flag);
  bool zero = true;
  for (double v : H) zero = zero && v == 0;
  report("cancelled before start: false, outputs untouched", !h && !f && zero && x == X && ql::cuda::available(),
         ql::cuda::lastError(), 0, 0);
}

void badArgsCase() {
  std::vector<float> x(12, 1.0f);
  const bool f = ql::cuda::fwht(x.data(), 4, 3);  // n not a power of two
  const std::string err = ql::cuda::lastError();
  report("bad arguments: false (EINVAL), backend stays on", !f && ql::cuda::available() && err.find("power of two") != std::string::npos,
         err, 0, 0);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "run";
  const bool large = argc > 2 && std::string(argv[2]) == "--large";
  const bool available = ql::cuda::available();
  if (mode == "info") {
    std::printf("{\"available\": %s, \"status\": \"%s\"}\n", available ? "true" : "false",
                jsonEscape(ql::cuda::status()).c_str());
    return 0;
  }
  if (!available) {
    std::printf("{\"skipped\": true, \"status\": \"%s\"}\n", jsonEscape(ql::cuda::status()).c_str());
    return 0;
  }
  std::printf("{\"status\": \"%s\"}\n", jsonEscape(ql::cuda::status()).c_str());

  // Hessian: ragged n around the 128 tile, rows around the 256-row chunk, strides, accumulation,
  // the split path (few tiles, many chunks) and, with QL_CUDA_PIECE_BYTES small, several pieces.
  hessianCase(1, 1, 1, 1, 1);
  hessianCase(7, 3, 7, 1, 2);
  hessianCase(65, 511, 65, 1, 3);
  hessianCase(65, 2600, 70, 2, 4);
  hessianCase(129, 257, 131, 1, 5);
  hessianCase(200, 1500, 200, 1, 6);
  hessianCase(300, 777, 300, 2, 7);

  gptqBlockCase(1, 1, 1, 10);
  gptqBlockCase(17, 130, 5, 11);
  gptqBlockCase(129, 257, 64, 12);
  gptqBlockCase(200, 300, 128, 13);

  gptqSessionCase(40, 200, 32, 1, 20);
  gptqSessionCase(70, 300, 64, 48, 21);
  gptqSessionCase(33, 129, 128, 1, 22);

  fwhtCase(1, 1, 1, 30);
  fwhtCase(3, 2, 1, 31);
  fwhtCase(5, 64, 1, 32);
  fwhtCase(33, 512, 1, 33);
  fwhtCase(3, 4096, 1, 34);
  fwhtCase(2, 8192, 1, 35);
  fwhtCase(1, 32768, 1, 36);
  fwhtCase(3, 8, 5, 37);
  fwhtCase(2, 64, 43, 38);
  fwhtCase(4, 1, 7, 39);
  fwhtCase(2, 256, 3, 40);
  fwhtNonFiniteCase(5, 64, 3 * 64 + 17, std::nanf(""));
  fwhtNonFiniteCase(2, 8192, 8192 + 5000, INFINITY);
  cancelCase();
  badArgsCase();

  if (large) {
    hessianCase(1024, 4096, 1024, 1, 50);
    hessianCase(4096, 2048, 4096, 1, 51);
    gptqBlockCase(4096, 4096, 128, 52);
    gptqSessionCase(4096, 4096, 128, 128, 53);
    gptqSessionCase(11008, 4096, 128, 1, 54);
    fwhtCase(4096, 4096, 1, 55);
    fwhtCase(64, 1 << 16, 1, 56);
    fwhtCase(11008 / 43, 256, 43, 57);
  }
  std::printf("{\"summary\": true, \"cases\": %d, \"failures\": %d, \"status\": \"%s\"}\n", g_cases, g_failures,
              jsonEscape(ql::cuda::status()).c_str());
  return g_failures == 0 ? 0 : 1;
}
