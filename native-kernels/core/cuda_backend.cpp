#include "cuda_backend.h"

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string>

// The C ABI's constants and types only: no CUDA header, no link dependency.
#include "../cuda/ql_cuda.h"

#if defined(__linux__)
#include <dlfcn.h>
#include <sys/stat.h>
#endif

namespace ql {
namespace cuda {

namespace {

struct Api {
  int (*abi_version)(void) = nullptr;
  int (*device_count)(void) = nullptr;
  int (*device_name)(char*, size_t) = nullptr;
  const char* (*last_error)(void) = nullptr;
  int (*hessian_update)(double*, size_t, const float*, size_t, size_t, ql_cuda_cancel_fn, void*) = nullptr;
  int (*gptq_block_update)(float*, size_t, size_t, size_t, const float*, size_t, size_t, const float*, size_t) = nullptr;
  int (*gptq_create)(ql_cuda_gptq**, const float*, size_t, size_t, size_t, const float*, size_t) = nullptr;
  int (*gptq_update)(ql_cuda_gptq*, size_t, size_t, const float*, size_t, float*, size_t, size_t) = nullptr;
  int (*gptq_read)(ql_cuda_gptq*, size_t, size_t, float*, size_t) = nullptr;
  void (*gptq_destroy)(ql_cuda_gptq*) = nullptr;
  int (*fwht)(float*, size_t, size_t, ql_cuda_cancel_fn, void*) = nullptr;
  int (*fwht_strided)(float*, size_t, size_t, size_t, ql_cuda_cancel_fn, void*) = nullptr;
};

struct State {
  bool loaded = false;  // library, ABI and a device: usable
  std::string status;
  Api api;
};

std::once_flag g_once;
State g_state;
std::atomic<bool> g_enabled{true};
std::atomic<bool> g_broken{false};
std::mutex g_brokenMutex;
std::string g_brokenReason;
thread_local std::string t_lastError;

#if defined(__linux__)
bool fileExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

template <typename Fn>
bool bind(void* lib, const char* name, Fn* out, std::string* missing) {
  void* sym = ::dlsym(lib, name);
  if (sym == nullptr) {
    if (missing->empty()) *missing = name;
    return false;
  }
  *out = reinterpret_cast<Fn>(sym);
  return true;
}

void load(State& s) {
  const char* env = std::getenv("QUANTLENS_CUDA");
  if (env != nullptr) {
    const std::string v = env;
    if (v == "0" || v == "false" || v == "off" || v == "no") {
      s.status = "disabled by QUANTLENS_CUDA=" + v;
      return;
    }
  }
  std::string path;
  const char* override = std::getenv("QUANTLENS_CUDA_LIB");
  if (override != nullptr && *override != 0) {
    path = override;
    if (!fileExists(path)) {
      s.status = "library not built: " + path + " (QUANTLENS_CUDA_LIB) not found";
      return;
    }
  } else {
    // Next to the addon: <addon dir>/../cuda/ (native-kernels/build/Release/../cuda/), or beside it.
    Dl_info self;
    if (::dladdr(reinterpret_cast<void*>(&load), &self) == 0 || self.dli_fname == nullptr) {
      s.status = "library not built: cannot locate the addon (dladdr failed); set QUANTLENS_CUDA_LIB";
      return;
    }
    std::string dir = self.dli_fname;
    const size_t slash = dir.rfind('/');
    dir = slash == std::string::npos ? "." : dir.substr(0, slash);
    std::string parent = dir + "/..";
    if (char* real = ::realpath(parent.c_str(), nullptr)) {
      parent = real;
      std::free(real);
    }
    const std::string candidates[] = {parent + "/cuda/libquantlens_cuda.so", dir + "/libquantlens_cuda.so"};
    for (const std::string& c : candidates) {
      if (fileExists(c)) {
        path = c;
        break;
      }
    }
    if (path.empty()) {
      s.status = "library not built: " + candidates[0] +
                 " not found (`npm run build:cuda` builds it where nvcc is installed)";
      return;
    }
  }
  ::dlerror();
  void* lib = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* why = ::dlerror();
    s.status = "library failed to load: " + std::string(why ? why : path);
    return;
  }
  // Never dlclosed: the CUDA runtime inside keeps process-wide state.
  Api& a = s.api;
  std::string missing;
  bind(lib, "ql_cuda_abi_version", &a.abi_version, &missing);
  if (a.abi_version != nullptr && a.abi_version() != QL_CUDA_ABI_VERSION) {
    s.status = "library ABI v" + std::to_string(a.abi_version()) + ", addon expects v" +
               std::to_string(QL_CUDA_ABI_VERSION) + ": rebuild it with `npm run build:cuda` (" + path + ")";
    return;
  }
  bind(lib, "ql_cuda_device_count", &a.device_count, &missing);
  bind(lib, "ql_cuda_device_name", &a.device_name, &missing);
  bind(lib, "ql_cuda_last_error", &a.last_error, &missing);
  bind(lib, "ql_cuda_hessian_update", &a.hessian_update, &missing);
  bind(lib, "ql_cuda_gptq_block_update", &a.gptq_block_update, &missing);
  bind(lib, "ql_cuda_gptq_create", &a.gptq_create, &missing);
  bind(lib, "ql_cuda_gptq_update", &a.gptq_update, &missing);
  bind(lib, "ql_cuda_gptq_read", &a.gptq_read, &missing);
  bind(lib, "ql_cuda_gptq_destroy", &a.gptq_destroy, &missing);
  bind(lib, "ql_cuda_fwht", &a.fwht, &missing);
  bind(lib, "ql_cuda_fwht_strided", &a.fwht_strided, &missing);
  if (!missing.empty()) {
    s.status = "library failed to load: " + path + " lacks " + missing;
    return;
  }
  const int devices = a.device_count();
  if (devices <= 0) {
    const std::string why = a.last_error();
    s.status = "no CUDA device" + (why.empty() ? std::string() : ": " + why);
    return;
  }
  char name[512] = {0};
  if (a.device_name(name, sizeof name) != QL_CUDA_OK) {
    s.status = "no CUDA device: " + std::string(a.last_error());
    return;
  }
  s.status = "ok: " + std::string(name) + (devices > 1 ? " (1 of " + std::to_string(devices) + " devices)" : "") +
             " via " + path;
  s.loaded = true;
}
#endif

const State& state() {
  std::call_once(g_once, [] {
#if defined(__linux__)
    try {
      load(g_state);
    } catch (const std::exception& e) {
      g_state.loaded = false;
      g_state.status = std::string("library failed to load: ") + e.what();
    }
#else
    g_state.status = "unsupported platform: the CUDA backend is built and loaded on Linux only";
#endif
  });
  return g_state;
}

void markBroken(const std::string& why) {
  std::lock_guard<std::mutex> lock(g_brokenMutex);
  if (!g_broken.load()) g_brokenReason = why;
  g_broken.store(true);
}

int pollCancel(void* ctx) { return isCancelled(static_cast<const CancelFlag*>(ctx)) ? 1 : 0; }

void* cancelCtx(const CancelFlag* cancel) { return const_cast<void*>(static_cast<const void*>(cancel)); }

/** available(), or false with lastError() saying why not. */
bool ready() {
  if (available()) return true;
  t_lastError = "CUDA backend not available: " + status();
  return false;
}

/** rc of a library call → true, or false (lastError set), or a throw when the output is undefined. */
bool check(int rc, const char* what) {
  if (rc == QL_CUDA_OK) return true;
  const std::string msg = std::string("cuda ") + what + ": " + state().api.last_error();
  t_lastError = msg;
  if (rc == QL_CUDA_EOUTPUT) {
    markBroken(msg);
    throw std::runtime_error(msg + " (copying the result back failed: the output is undefined)");
  }
  if (rc == QL_CUDA_ERUNTIME || rc == QL_CUDA_ENODEV) markBroken(msg);
  return false;
}

}  // namespace

bool available() { return state().loaded && g_enabled.load() && !g_broken.load(); }

std::string status() {
  const State& s = state();
  if (!s.loaded) return s.status;
  if (g_broken.load()) {
    std::lock_guard<std::mutex> lock(g_brokenMutex);
    return "switched off after a CUDA error: " + g_brokenReason;
  }
  if (!g_enabled.load()) return "switched off by setEnabled(false); " + s.status;
  return s.status;
}

void setEnabled(bool on) { g_enabled.store(on); }

std::string lastError() { return t_lastError; }

namespace {
std::atomic<uint64_t> g_hessianCalls{0}, g_gptqLayers{0};
}  // namespace

DispatchCounts dispatchCounts() { return {g_hessianCalls.load(), g_gptqLayers.load()}; }

bool hessian_update(double* H, size_t n, const float* X, size_t rows, size_t ldx, const CancelFlag* cancel) {
  if (!ready()) return false;
  const bool ok = check(state().api.hessian_update(H, n, X, rows, ldx, cancel ? pollCancel : nullptr, cancelCtx(cancel)),
                        "hessian_update");
  if (ok) g_hessianCalls++;
  return ok;
}

bool gptq_block_update(float* W, size_t rows, size_t colsRest, size_t ldw, const float* ErrT, size_t ldErr,
                       size_t block, const float* U, size_t ldu) {
  if (!ready()) return false;
  return check(state().api.gptq_block_update(W, rows, colsRest, ldw, ErrT, ldErr, block, U, ldu), "gptq_block_update");
}

bool fwht(float* X, size_t rows, size_t n, const CancelFlag* cancel) {
  if (!ready()) return false;
  return check(state().api.fwht(X, rows, n, cancel ? pollCancel : nullptr, cancelCtx(cancel)), "fwht");
}

bool fwht_strided(float* X, size_t outer, size_t d, size_t inner, const CancelFlag* cancel) {
  if (!ready()) return false;
  return check(state().api.fwht_strided(X, outer, d, inner, cancel ? pollCancel : nullptr, cancelCtx(cancel)),
               "fwht_strided");
}

bool GptqSession::begin(const float* W, size_t rows, size_t cols, size_t ldw, const float* U, size_t ldu) {
  end();
  if (!ready()) return false;
  ql_cuda_gptq* s = nullptr;
  if (!check(state().api.gptq_create(&s, W, rows, cols, ldw, U, ldu), "gptq_create")) return false;
  session_ = s;
  g_gptqLayers++;
  return true;
}

bool GptqSession::update(size_t i1, size_t i2, const float* ErrT, size_t ldErr, float* next, size_t ldNext,
                         size_t nextCols) {
  if (session_ == nullptr) {
    t_lastError = "cuda gptq_update: no active session";
    return false;
  }
  bool ok = false;
  try {
    ok = check(state().api.gptq_update(static_cast<ql_cuda_gptq*>(session_), i1, i2, ErrT, ldErr, next, ldNext, nextCols),
               "gptq_update");
  } catch (...) {
    end();
    throw;
  }
  if (!ok) end();
  return ok;
}

bool GptqSession::read(size_t c0, size_t c1, float* dst, size_t ldd) {
  if (session_ == nullptr) {
    t_lastError = "cuda gptq_read: no active session";
    return false;
  }
  return check(state().api.gptq_read(static_cast<ql_cuda_gptq*>(session_), c0, c1, dst, ldd), "gptq_read");
}

void GptqSession::end() {
  if (session_ == nullptr) return;
  state().api.gptq_destroy(static_cast<ql_cuda_gptq*>(session_));
  session_ = nullptr;
}

}  // namespace cuda
}  // namespace ql
