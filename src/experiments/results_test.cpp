// The results file: rows survive a reopen, runs are recognized, a foreign header or a changed
// budget is an error rather than a silent mix.
#include "experiments/results.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "bnlab/error.h"

namespace bnlab::experiments {
namespace {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("bnlab_results_" + std::to_string(::getpid()) + "_" +
                                               ::testing::UnitTest::GetInstance()->current_test_info()->name());
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
};

TEST(ResultsFile, RowsSurviveAReopenAndRunsAreKnown) {
  TempDir dir;
  const std::string path = (dir.path / "results.csv").string();
  {
    ResultsFile f(path, {"run", "step", "accuracy"});
    EXPECT_FALSE(f.has_run("a"));
    f.append({{"a", field(int64_t{1}), field(97.5)}, {"a", field(int64_t{2}), field(std::nan(""))}});
    f.append({{"b", "1", "12"}});
  }
  ResultsFile f(path, {"run", "step", "accuracy"});
  EXPECT_TRUE(f.has_run("a"));
  EXPECT_TRUE(f.has_run("b"));
  const Table t = f.table({"a"});
  ASSERT_EQ(t.rows.size(), 2u);
  EXPECT_EQ(t.number(t.rows[0], "accuracy"), 97.5);
  EXPECT_TRUE(std::isnan(t.number(t.rows[1], "accuracy")));
  EXPECT_EQ(t.where("step", "2").size(), 1u);
  std::ifstream in(path);
  std::string header;
  std::getline(in, header);
  EXPECT_EQ(header, "run,step,accuracy");
}

TEST(ResultsFile, ForeignHeaderAndBadFieldsAreErrors) {
  TempDir dir;
  const std::string path = (dir.path / "results.csv").string();
  std::ofstream(path) << "run,other\n";
  EXPECT_THROW(ResultsFile(path, {"run", "step"}), Error);
  ResultsFile fresh((dir.path / "new.csv").string(), {"run", "x"});
  EXPECT_THROW(fresh.append({{"a,b", "1"}}), Error);
  EXPECT_THROW(fresh.append({{"a"}}), Error);
}

TEST(ResultsSettings, ChangedBudgetIsAnErrorSameBudgetIsNot) {
  TempDir dir;
  check_settings(dir.path.string(), {{"steps", "5"}, {"data", "mnist"}});
  EXPECT_NO_THROW(check_settings(dir.path.string(), {{"steps", "5"}, {"data", "mnist"}}));
  try {
    check_settings(dir.path.string(), {{"steps", "6"}, {"data", "mnist"}});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("steps=5"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace bnlab::experiments
