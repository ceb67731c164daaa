// One thread pool for every native kernel. OpenBLAS runs single-threaded inside it (see
// matmul.cc), so there is exactly one set of threads on the machine: no OpenMP, no OpenBLAS
// server threads fighting over the cores.
//
// The calling (JavaScript) thread is worker 0 and takes tasks like the others. Workers spin
// for a short while after a job (the next kernel call usually follows within microseconds),
// then sleep on a condition variable, so an idle miner costs no CPU and several miner
// processes can share one host.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace iota {

class Pool {
 public:
  static Pool& get();

  // Total threads including the caller; at least 1.
  int size() const { return size_; }
  // Replaces the workers; call between kernels only, from the thread that will run kernels.
  // With pin, thread k (the caller is 0) is bound to the k-th CPU this process may use:
  // some hypervisors' schedulers pack runnable threads onto few vCPUs, which leaves a pool
  // sharing one core. Pin only when the pool spans every allowed CPU.
  void resize(int threads, bool pin);
  bool pinned() const { return pinned_; }
  // How long an idle worker spins before it sleeps.
  void set_spin_us(int us) { spin_us_.store(us < 0 ? 0 : us); }
  int spin_us() const { return spin_us_.load(); }

  // Runs fn(task) for task in [0, tasks), spread over the pool; returns when all are done.
  // Runs inline when tasks <= 1 or the pool has one thread.
  void run(int tasks, const std::function<void(int)>& fn);

  // Splits [0, n) into at most size() chunks of at least `grain` items and runs
  // fn(begin, end) on each.
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

  ~Pool();

 private:
  Pool();
  void worker_loop(int index, uint32_t seen, int cpu);
  // Claims and runs tasks of job `generation` until none are left or another job replaced it.
  void work(uint32_t generation);
  void stop_workers();

  int size_ = 1;
  bool pinned_ = false;
  bool saved_mask_ = false;
  std::vector<int> cpus_;  // CPUs the process may use, as first seen
  std::vector<std::thread> workers_;
  // The published job: its generation (high 32 bits) and its next unclaimed task (low 32).
  // A thread claims a task by compare-and-swap on the whole word, so a worker that wakes
  // late can never claim a task of a finished job, and the caller waits only for the tasks,
  // not for workers to wake up (a halted vCPU can take milliseconds to come back).
  std::atomic<uint64_t> ticket_{0};
  std::atomic<int> done_{0};
  std::atomic<int> tasks_{0};
  std::atomic<const std::function<void(int)>*> job_{nullptr};
  uint32_t generation_ = 0;  // the caller's count of jobs
  std::atomic<int> sleepers_{0};
  std::atomic<bool> stopping_{false};
  std::atomic<int> spin_us_{200};
  std::mutex mutex_;
  std::condition_variable wake_;
  // Held by the thread running a job: a second JavaScript thread (a worker_thread with its
  // own tfjs) runs its kernels inline instead of entering the pool at the same time.
  // Kernels must not call run() from inside a task.
  std::mutex run_mutex_;
};

}  // namespace iota
