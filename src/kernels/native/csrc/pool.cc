#include "pool.h"

#include <pthread.h>
#include <sched.h>

#include <chrono>
#include <immintrin.h>

namespace iota {

Pool& Pool::get() {
  static Pool pool;
  return pool;
}

Pool::Pool() {}

Pool::~Pool() { stop_workers(); }

void Pool::stop_workers() {
  if (workers_.empty()) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_.store(true);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
  workers_.clear();
  stopping_.store(false);
}

namespace {

void bind_to(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

}  // namespace

void Pool::resize(int threads, bool pin) {
  std::lock_guard<std::mutex> running(run_mutex_);
  if (threads < 1) threads = 1;
  if (!saved_mask_) {
    saved_mask_ = true;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) == 0)
      for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &set)) cpus_.push_back(c);
  }
  pin = pin && threads > 1 && threads <= static_cast<int>(cpus_.size());
  if (threads == size_ && pin == pinned_) return;
  stop_workers();
  size_ = threads;
  if (pin) {
    bind_to(cpus_[0]);
  } else if (pinned_) {
    cpu_set_t set;  // give the caller back every CPU it had
    CPU_ZERO(&set);
    for (int c : cpus_) CPU_SET(c, &set);
    pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
  }
  pinned_ = pin;
  const uint32_t seen = generation_;
  for (int i = 1; i < threads; i++) {
    const int cpu = pin ? cpus_[i] : -1;
    workers_.emplace_back([this, i, seen, cpu] { worker_loop(i, seen, cpu); });
  }
}

void Pool::worker_loop(int index, uint32_t seen, int cpu) {
  (void)index;
  if (cpu >= 0) bind_to(cpu);
  auto published = [this] { return static_cast<uint32_t>(ticket_.load(std::memory_order_acquire) >> 32); };
  for (;;) {
    // Spin briefly: kernels arrive back to back while a step runs.
    auto start = std::chrono::steady_clock::now();
    const auto spin = std::chrono::microseconds(spin_us_.load(std::memory_order_relaxed));
    int polls = 0;
    while (published() == seen && !stopping_.load(std::memory_order_relaxed)) {
      _mm_pause();
      if (++polls % 256 == 0 && std::chrono::steady_clock::now() - start > spin) break;
    }
    if (published() == seen && !stopping_.load()) {
      std::unique_lock<std::mutex> lock(mutex_);
      sleepers_.fetch_add(1);
      while (published() == seen && !stopping_.load()) wake_.wait(lock);
      sleepers_.fetch_sub(1);
    }
    if (stopping_.load()) return;
    seen = published();
    work(seen);
  }
}

void Pool::work(uint32_t generation) {
  for (;;) {
    uint64_t t = ticket_.load(std::memory_order_acquire);
    if (static_cast<uint32_t>(t >> 32) != generation) return;
    const int task = static_cast<int>(t & 0xffffffffu);
    if (task >= tasks_.load(std::memory_order_relaxed)) return;
    if (!ticket_.compare_exchange_weak(t, t + 1, std::memory_order_acq_rel)) continue;
    (*job_.load(std::memory_order_relaxed))(task);
    done_.fetch_add(1, std::memory_order_release);
  }
}

void Pool::run(int tasks, const std::function<void(int)>& fn) {
  if (tasks <= 0) return;
  std::unique_lock<std::mutex> running(run_mutex_, std::try_to_lock);
  if (tasks == 1 || size_ == 1 || !running.owns_lock()) {
    for (int t = 0; t < tasks; t++) fn(t);
    return;
  }
  // The previous job is complete (all its tasks done), so nobody reads these now.
  job_.store(&fn, std::memory_order_relaxed);
  tasks_.store(tasks, std::memory_order_relaxed);
  done_.store(0, std::memory_order_relaxed);
  const uint32_t generation = ++generation_;
  ticket_.store(static_cast<uint64_t>(generation) << 32);  // seq_cst: pairs with the sleepers_ check
  if (sleepers_.load() > 0) {
    std::lock_guard<std::mutex> lock(mutex_);
    wake_.notify_all();
  }
  work(generation);
  while (done_.load(std::memory_order_acquire) < tasks) _mm_pause();
}

void Pool::parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  // A few chunks per thread: when a worker is slow to wake (or its vCPU is taken away), the
  // caller takes more of them instead of waiting.
  int64_t chunks = n / grain;
  if (chunks > 4 * size_) chunks = 4 * size_;
  if (chunks < 1) chunks = 1;
  if (chunks == 1) {
    fn(0, n);
    return;
  }
  run(static_cast<int>(chunks), [&](int c) {
    const int64_t begin = n * c / chunks;
    const int64_t end = n * (c + 1) / chunks;
    fn(begin, end);
  });
}

}  // namespace iota
