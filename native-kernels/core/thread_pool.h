// A small fork-join pool shared by all kernels.
//
// parallelFor(tasks, body) runs body(0..tasks-1) on up to threads() threads and returns when all
// are done. The calling thread takes part, so a call never waits on a busy pool: several callers
// (N-API async workers run on libuv's threads) can use the pool at once, and resizing it while
// they run only changes who helps them.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace ql {

class ThreadPool {
 public:
  /** `threads` counts the caller: 1 means no worker threads. 0 means hardware concurrency. */
  explicit ThreadPool(unsigned threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  /** Threads a parallelFor may use, the caller included. */
  unsigned threads() const;
  /** Change the size (0 = hardware concurrency). Safe while other threads call parallelFor. */
  void resize(unsigned threads);

  /**
   * Run body(i) for every i in [0, tasks). Tasks are handed out one at a time in index order, so
   * make each one a block of real work (tens of microseconds or more). If a body throws, the
   * remaining unclaimed tasks are skipped and the first exception is rethrown here.
   */
  void parallelFor(size_t tasks, const std::function<void(size_t)>& body);

  static unsigned hardwareThreads();

 private:
  struct Job;
  void workerLoop();
  static void runTasks(Job& job);
  void startWorkers(unsigned threads);
  void stopWorkers();

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<Job>> jobs_;
  std::vector<std::thread> workers_;
  bool stopping_ = false;
  std::mutex resizeMutex_;
};

/** The process-wide pool the kernels use. */
ThreadPool& pool();

}  // namespace ql
