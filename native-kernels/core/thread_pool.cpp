#include "thread_pool.h"

#include <algorithm>
#include <atomic>
#include <exception>

namespace ql {

struct ThreadPool::Job {
  const std::function<void(size_t)>* body = nullptr;
  size_t tasks = 0;
  std::atomic<size_t> next{0};  // next unclaimed task index
  std::atomic<size_t> done{0};  // tasks finished (or skipped after an error)
  std::mutex mutex;
  std::condition_variable finished;
  std::exception_ptr error;  // first exception thrown by a body, guarded by mutex
};

ThreadPool::ThreadPool(unsigned threads) { startWorkers(threads == 0 ? hardwareThreads() : threads); }

ThreadPool::~ThreadPool() { stopWorkers(); }

unsigned ThreadPool::hardwareThreads() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : n;
}

unsigned ThreadPool::threads() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return static_cast<unsigned>(workers_.size()) + 1;
}

void ThreadPool::resize(unsigned threads) {
  std::lock_guard<std::mutex> resizing(resizeMutex_);
  stopWorkers();
  startWorkers(threads == 0 ? hardwareThreads() : threads);
}

void ThreadPool::startWorkers(unsigned threads) {
  std::lock_guard<std::mutex> lock(mutex_);
  stopping_ = false;
  for (unsigned i = 1; i < threads; i++) workers_.emplace_back([this] { workerLoop(); });
}

void ThreadPool::stopWorkers() {
  std::vector<std::thread> old;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    old.swap(workers_);
  }
  wake_.notify_all();
  // Queued jobs are not lost: every job's own caller keeps claiming its tasks until none are left.
  for (std::thread& t : old) t.join();
}

void ThreadPool::runTasks(Job& job) {
  for (;;) {
    const size_t i = job.next.fetch_add(1, std::memory_order_relaxed);
    if (i >= job.tasks) return;
    try {
      (*job.body)(i);
    } catch (...) {
      std::lock_guard<std::mutex> lock(job.mutex);
      if (!job.error) job.error = std::current_exception();
      // Skip what nobody has claimed yet; count it as done so the caller wakes up.
      const size_t claimed = job.next.exchange(job.tasks);
      if (claimed < job.tasks) job.done.fetch_add(job.tasks - claimed);
    }
    if (job.done.fetch_add(1, std::memory_order_acq_rel) + 1 == job.tasks) {
      std::lock_guard<std::mutex> lock(job.mutex);
      job.finished.notify_all();
    }
  }
}

void ThreadPool::workerLoop() {
  for (;;) {
    std::shared_ptr<Job> job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      if (stopping_) return;
      job = jobs_.front();
      // A job whose tasks are all claimed leaves the queue; its caller waits for the stragglers.
      if (job->next.load(std::memory_order_relaxed) >= job->tasks) {
        jobs_.pop_front();
        continue;
      }
    }
    runTasks(*job);
  }
}

void ThreadPool::parallelFor(size_t tasks, const std::function<void(size_t)>& body) {
  if (tasks == 0) return;
  size_t helpers;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    helpers = std::min(workers_.size(), tasks - 1);
  }
  if (helpers == 0) {
    for (size_t i = 0; i < tasks; i++) body(i);
    return;
  }
  auto job = std::make_shared<Job>();
  job->body = &body;
  job->tasks = tasks;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    jobs_.push_back(job);
  }
  for (size_t i = 0; i < helpers; i++) wake_.notify_one();
  runTasks(*job);
  {
    std::unique_lock<std::mutex> lock(job->mutex);
    job->finished.wait(lock, [&] { return job->done.load(std::memory_order_acquire) >= job->tasks; });
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = std::find(jobs_.begin(), jobs_.end(), job);
    if (it != jobs_.end()) jobs_.erase(it);
  }
  if (job->error) std::rethrow_exception(job->error);
}

ThreadPool& pool() {
  // Leaked on purpose: joining threads from a static destructor at process exit can deadlock.
  static ThreadPool* instance = new ThreadPool(0);
  return *instance;
}

}  // namespace ql
