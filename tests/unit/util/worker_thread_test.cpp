// WorkerThread: jobs run in order on one other thread; stop() runs what was posted before
// it, then joins; later posts are dropped.
#include "util/worker_thread.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

namespace {

using recsync::util::WorkerThread;

TEST(WorkerThread, RunsJobsInOrderOnAnotherThread) {
    WorkerThread worker;
    std::mutex m;
    std::vector<int> seen;
    std::vector<std::thread::id> threads;
    for (int i = 0; i < 100; ++i)
        worker.post([&, i] {
            std::lock_guard l(m);
            seen.push_back(i);
            threads.push_back(std::this_thread::get_id());
        });
    worker.stop();
    ASSERT_EQ(seen.size(), 100u);
    for (int i = 0; i < 100; ++i) EXPECT_EQ(seen[static_cast<size_t>(i)], i);
    for (const auto &t : threads) {
        EXPECT_EQ(t, threads.front());
        EXPECT_NE(t, std::this_thread::get_id());
    }
}

TEST(WorkerThread, StopFinishesWhatWasPostedAndDropsTheRest) {
    std::atomic<int> ran{0};
    WorkerThread worker;
    worker.post([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        ++ran;
    });
    worker.post([&] { ++ran; });
    worker.stop();
    EXPECT_EQ(ran.load(), 2);
    worker.post([&] { ++ran; });
    worker.stop();  // idempotent
    EXPECT_EQ(ran.load(), 2);
}

}  // namespace
