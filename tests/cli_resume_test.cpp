// Reliability of `bnlab train`: interrupted runs (SIGINT, SIGTERM, a crash) resume bit for bit,
// checkpoints are replaced atomically, and non-finite losses stop or are skipped as asked.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace {

namespace fs = std::filesystem;

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

// Metrics without the wall-clock column, which no two runs share.
std::string metrics_without_seconds(const fs::path& p) {
  std::istringstream in(read_file(p));
  std::string line, out;
  while (std::getline(in, line)) out += line.substr(0, line.rfind(',')) + "\n";
  return out;
}

class Resume : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("bnlab_resume_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // Starts bnlab with `args`, its output going to `log`; returns the pid.
  pid_t start(const std::string& args, const std::string& log) {
    const pid_t pid = fork();
    if (pid == 0) {
      const std::string command = "exec " + std::string(BNLAB_BINARY) + " " + args + " > " + log + " 2>&1";
      execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    return pid;
  }

  int wait_status(pid_t pid) {
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  int run(const std::string& args, const std::string& log) { return wait_status(start(args, log)); }

  // Waits until the log shows `count` progress lines (the run is well into training).
  void wait_for_progress(const std::string& log, int count) {
    for (int i = 0; i < 600; ++i) {
      std::istringstream in(read_file(log));
      std::string line;
      int seen = 0;
      while (std::getline(in, line)) seen += line.rfind("Train Epoch", 0) == 0;
      if (seen >= count) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    FAIL() << "no progress in " << log;
  }

  // The same run, uninterrupted, for reference.
  std::string reference(const std::string& name) {
    EXPECT_EQ(run(std::string(kRun) + " --save " + path(name + ".st") + " --metrics " + path(name + ".csv"), path(name + ".log")), 0);
    return path(name);
  }

  static constexpr const char* kRun = "train --limit-train 1920 --limit-test 300 --epochs 2 --log-interval 5 --threads 2";
  fs::path dir_;
};

TEST_F(Resume, SigintSavesACheckpointAndTheResumedRunIsBitwiseTheSame) {
  const std::string ref = reference("ref");
  const std::string args = std::string(kRun) + " --save " + path("r.st") + " --metrics " + path("r.csv") +
                           " --checkpoint " + path("ck.st");
  const pid_t pid = start(args, path("1.log"));
  wait_for_progress(path("1.log"), 2);
  kill(pid, SIGINT);
  EXPECT_EQ(wait_status(pid), 130);
  const std::string log = read_file(path("1.log"));
  EXPECT_NE(log.find("interrupted by SIGINT after step"), std::string::npos) << log;
  EXPECT_NE(log.find("resume with the same command and --resume " + path("ck.st")), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(path("r.st")));  // a stopped run writes no final model

  ASSERT_EQ(run(args + " --resume " + path("ck.st"), path("2.log")), 0) << read_file(path("2.log"));
  EXPECT_EQ(read_file(ref + ".st"), read_file(path("r.st")));
  EXPECT_EQ(metrics_without_seconds(ref + ".csv"), metrics_without_seconds(path("r.csv")));
}

TEST_F(Resume, SigtermAlsoSaves) {
  const std::string args = std::string(kRun) + " --checkpoint " + path("ck.st");
  const pid_t pid = start(args, path("1.log"));
  wait_for_progress(path("1.log"), 1);
  kill(pid, SIGTERM);
  EXPECT_EQ(wait_status(pid), 143);
  EXPECT_TRUE(fs::exists(path("ck.st")));
}

TEST_F(Resume, AfterACrashThePeriodicCheckpointResumesBitwise) {
  const std::string ref = reference("ref");
  const std::string args = std::string(kRun) + " --save " + path("r.st") + " --metrics " + path("r.csv") +
                           " --checkpoint " + path("ck.st") + " --checkpoint-every 15";
  const pid_t pid = start(args, path("1.log"));
  wait_for_progress(path("1.log"), 7);  // past step 30: at least two checkpoints written
  kill(pid, SIGKILL);                   // no chance to save anything
  wait_status(pid);
  ASSERT_TRUE(fs::exists(path("ck.st")));
  ASSERT_EQ(run(args + " --resume " + path("ck.st"), path("2.log")), 0) << read_file(path("2.log"));
  EXPECT_EQ(read_file(ref + ".st"), read_file(path("r.st")));
  EXPECT_EQ(metrics_without_seconds(ref + ".csv"), metrics_without_seconds(path("r.csv")));
}

// With gradient accumulation the checkpoints, --max-steps and the resumed position count
// optimizer steps: a run stopped after step 37 (of 2 x 30) resumes from its checkpoint of step 35,
// in the second epoch, to the bits of an uninterrupted run.
TEST_F(Resume, WithAccumulationTheResumedRunIsBitwiseTheSame) {
  const std::string small = "train --limit-train 1920 --limit-test 100 --epochs 2 --log-interval 5 --threads 2";
  const std::string run_args = small + " --accumulate 4 --save ";
  ASSERT_EQ(run(run_args + path("ref.st") + " --metrics " + path("ref.csv"), path("ref.log")), 0) << read_file(path("ref.log"));
  const std::string args = run_args + path("r.st") + " --metrics " + path("r.csv") + " --checkpoint " + path("ck.st") +
                           " --checkpoint-every 7";
  ASSERT_EQ(run(args + " --max-steps 37", path("1.log")), 0) << read_file(path("1.log"));
  EXPECT_NE(read_file(path("1.log")).find("trained 37 steps"), std::string::npos) << read_file(path("1.log"));
  ASSERT_EQ(run(args + " --resume " + path("ck.st"), path("2.log")), 0) << read_file(path("2.log"));
  EXPECT_EQ(read_file(path("ref.st")), read_file(path("r.st")));
  EXPECT_EQ(metrics_without_seconds(path("ref.csv")), metrics_without_seconds(path("r.csv")));
  // Another K changes the run's bits: refused.
  EXPECT_EQ(run(small + " --accumulate 2 --resume " + path("ck.st"), path("3.log")), 2);
  EXPECT_EQ(read_file(path("3.log")).find("bnlab: " + path("ck.st") + ": run.accumulate: the checkpoint was made with 4, this run has 2"),
            0u) << read_file(path("3.log"));
}

// Fine-tuning starts a fresh run (step 0) from a model's weights; another model's file is refused
// naming the file and a tensor (src/train/train_step_test.cpp checks the weights themselves).
TEST_F(Resume, InitFromStartsAFreshRunFromAModel) {
  ASSERT_EQ(run(std::string(kRun) + " --max-steps 3 --save " + path("m.st"), path("1.log")), 0);
  ASSERT_EQ(run(std::string(kRun) + " --max-steps 2 --init-from " + path("m.st"), path("2.log")), 0) << read_file(path("2.log"));
  EXPECT_NE(read_file(path("2.log")).find(", from " + path("m.st")), std::string::npos) << read_file(path("2.log"));
  EXPECT_NE(read_file(path("2.log")).find("trained 2 steps"), std::string::npos) << read_file(path("2.log"));
  EXPECT_EQ(run(std::string(kRun) + " --model seed-nobn --init-from " + path("m.st"), path("3.log")), 2);
  EXPECT_EQ(read_file(path("3.log")).rfind("bnlab: " + path("m.st") + ": tensor '", 0), 0u) << read_file(path("3.log"));
}

TEST_F(Resume, ResumeWithOtherSettingsIsRefused) {
  const std::string args = std::string(kRun) + " --max-steps 5 --checkpoint-every 5 --checkpoint " + path("ck.st");
  ASSERT_EQ(run(args, path("1.log")), 0);
  EXPECT_EQ(run(std::string(kRun) + " --batch-size 32 --resume " + path("ck.st"), path("2.log")), 2);
  EXPECT_EQ(read_file(path("2.log")).find("bnlab: " + path("ck.st") + ": run.batch_size: the checkpoint was made with 64, this run has 32"),
            0u) << read_file(path("2.log"));
  // A model file is not a training checkpoint.
  ASSERT_EQ(run(std::string(kRun) + " --max-steps 2 --save " + path("m.st"), path("3.log")), 0);
  EXPECT_EQ(run(std::string(kRun) + " --resume " + path("m.st"), path("4.log")), 2);
}

TEST_F(Resume, NonFiniteLossStopsAndKeepsTheLastGoodCheckpoint) {
  const std::string ck = path("ck.st");
  ASSERT_EQ(run(std::string(kRun) + " --max-steps 4 --checkpoint-every 2 --checkpoint " + ck, path("0.log")), 0);
  const std::string good = read_file(ck);
  const int status = run(std::string(kRun) + " --lr 1e38 --checkpoint " + ck, path("1.log"));
  EXPECT_EQ(status, 2);
  const std::string log = read_file(path("1.log"));
  EXPECT_NE(log.find("bnlab: training: step "), std::string::npos) << log;
  EXPECT_NE(log.find("first non-finite output in layer"), std::string::npos) << log;
  EXPECT_NE(log.find("the last good checkpoint is " + ck), std::string::npos) << log;
  EXPECT_EQ(read_file(ck), good);  // untouched by the failed run
}

TEST_F(Resume, OnNanSkipDropsBadBatchesAndCarriesOn) {
  const int status = run(std::string(kRun) + " --optimizer sgd --lr 1e38 --on-nan skip", path("1.log"));
  const std::string log = read_file(path("1.log"));
  EXPECT_EQ(status, 0) << log;
  EXPECT_NE(log.find("skipped "), std::string::npos) << log;
  EXPECT_NE(log.find("test accuracy: "), std::string::npos) << log;
}

}  // namespace
