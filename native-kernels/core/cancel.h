// Cooperative cancellation: the caller owns a flag, kernels poll it between blocks.
#pragma once

#include <atomic>
#include <exception>

namespace ql {

using CancelFlag = std::atomic<bool>;

/** Thrown by a kernel (on the calling thread, after its workers have stopped) when its flag was set. */
struct Cancelled : std::exception {
  const char* what() const noexcept override { return "cancelled"; }
};

inline bool isCancelled(const CancelFlag* flag) {
  return flag != nullptr && flag->load(std::memory_order_relaxed);
}

inline void throwIfCancelled(const CancelFlag* flag) {
  if (isCancelled(flag)) throw Cancelled();
}

}  // namespace ql
