// `bnlab experiment` end to end on a tiny budget (a few steps on a slice of MNIST): every
// experiment writes a well-formed results.csv, SVG and PNG figures and a report; an interrupted
// experiment keeps its finished runs and a rerun skips them; changed budgets and bad names are
// errors.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <tuple>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>
#include <vector>

namespace {

namespace fs = std::filesystem;

struct CommandResult {
  int status = -1;
  std::string out;  // stdout and stderr together
};

CommandResult bnlab(const std::string& args) {
  CommandResult r;
  const std::string command = std::string(BNLAB_BINARY) + " " + args + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) r.out.append(buf.data(), n);
  const int status = pclose(pipe);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::vector<std::string> split_fields(const std::string& line) {
  std::vector<std::string> f;
  std::istringstream in(line);
  for (std::string v; std::getline(in, v, ',');) f.push_back(v);
  return f;
}

size_t fields(const std::string& line) { return static_cast<size_t>(std::count(line.begin(), line.end(), ',')) + 1; }

// The report states its budget (`budget`, the steps or images per run the test asked for) and,
// after `marker`, one of the verdicts it chooses from the numbers (`outcomes`).
void expect_budget_and_verdict(const std::string& report, const std::string& budget, const std::string& marker,
                               const std::vector<std::string>& outcomes) {
  EXPECT_NE(report.find(budget), std::string::npos) << "the report does not state its budget '" << budget << "':\n" << report;
  const size_t at = report.find(marker);
  ASSERT_NE(at, std::string::npos) << "no '" << marker << "' in the report:\n" << report;
  const std::string after = report.substr(at);
  EXPECT_TRUE(std::any_of(outcomes.begin(), outcomes.end(), [&](const std::string& o) { return after.find(o) != std::string::npos; }))
      << "no verdict after '" << marker << "':\n" << after;
}

// A small XML well-formedness check: tags nest and close, quotes close, one root element.
// Returns the root's name, or "" if the text is not well-formed.
std::string xml_root(const std::string& text) {
  std::vector<std::string> open;
  std::string root;
  size_t i = 0;
  while ((i = text.find('<', i)) != std::string::npos) {
    auto skip_to = [&](const char* end) {
      const size_t e = text.find(end, i);
      i = e == std::string::npos ? std::string::npos : e + std::strlen(end);
      return i != std::string::npos;
    };
    if (text.compare(i, 4, "<!--") == 0) { if (!skip_to("-->")) return ""; continue; }
    if (text.compare(i, 9, "<![CDATA[") == 0) { if (!skip_to("]]>")) return ""; continue; }
    if (text.compare(i, 2, "<?") == 0) { if (!skip_to("?>")) return ""; continue; }
    if (text.compare(i, 2, "<!") == 0) { if (!skip_to(">")) return ""; continue; }
    const bool closing = text.compare(i, 2, "</") == 0;
    size_t j = i + (closing ? 2 : 1);
    const size_t name_end = text.find_first_of(" \t\r\n/>", j);
    if (name_end == std::string::npos || name_end == j) return "";
    const std::string name = text.substr(j, name_end - j);
    char quote = 0;
    for (j = name_end; j < text.size(); ++j) {  // attributes: '>' inside quotes does not end the tag
      if (quote) { if (text[j] == quote) quote = 0; }
      else if (text[j] == '"' || text[j] == '\'') quote = text[j];
      else if (text[j] == '>') break;
    }
    if (j == text.size()) return "";
    const bool self_closing = text[j - 1] == '/';
    if (closing) {
      if (open.empty() || open.back() != name) return "";
      open.pop_back();
    } else if (!self_closing) {
      if (open.empty()) {
        if (!root.empty()) return "";  // a second root
        root = name;
      }
      open.push_back(name);
    } else if (open.empty() && root.empty()) {
      root = name;
    }
    i = j + 1;
  }
  return open.empty() ? root : "";
}

class ExperimentCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("bnlab_experiment_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Runs the experiment and checks everything it promises to write; returns the CSV's lines.
  std::vector<std::string> run_and_check(const std::string& name, const std::string& flags, const std::string& header,
                                         const std::vector<std::string>& figures) {
    const CommandResult r = bnlab("experiment " + name + " " + kTiny + " " + (flags.empty() ? "--steps 3" : flags) +
                                  " --out " + dir_.string());
    EXPECT_EQ(r.status, 0) << r.out;
    const std::vector<std::string> csv = lines_of(read_file(dir_ / "results.csv"));
    EXPECT_GE(csv.size(), 2u);
    if (csv.empty()) return csv;
    EXPECT_EQ(csv[0], header);
    for (size_t i = 1; i < csv.size(); ++i) EXPECT_EQ(fields(csv[i]), fields(header)) << "line " << i + 1 << ": " << csv[i];
    const std::string report = read_file(dir_ / "report.md");
    EXPECT_EQ(report.rfind("# ", 0), 0u) << report;
    EXPECT_NE(report.find("|---|"), std::string::npos) << "no table in the report";
    for (const std::string& fig : figures) {
      const std::string svg = read_file(dir_ / (fig + ".svg"));
      EXPECT_EQ(xml_root(svg), "svg") << fig << ".svg is not well-formed XML with an <svg> root";
      const std::string png = read_file(dir_ / (fig + ".png"));
      EXPECT_GT(png.size(), 1000u) << fig;
      EXPECT_EQ(png.substr(0, std::min<size_t>(8, png.size())), std::string("\x89PNG\r\n\x1a\n", 8)) << fig;
      EXPECT_NE(report.find("](" + fig + ".png)"), std::string::npos) << "report does not show " << fig;
      EXPECT_TRUE(fs::exists(dir_ / (fig + ".gp")));
    }
    return csv;
  }

  // `bad` ("--flag value") is a one-line error naming the flag, exit 2, and nothing in --out.
  void expect_flag_refused(const std::string& experiment, const std::string& bad) {
    const fs::path out = dir_.string() + "_refused";
    const CommandResult r = bnlab("experiment " + experiment + " " + kTiny + " --steps 1 " + bad + " --out " + out.string());
    EXPECT_EQ(r.status, 2) << bad << ": " << r.out;
    const std::string flag = bad.substr(0, bad.find(' '));
    EXPECT_NE(r.out.find("bnlab: experiment: " + flag + ": "), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("internal error"), std::string::npos) << r.out;
    EXPECT_FALSE(fs::exists(out)) << bad << " wrote into --out nevertheless";
    fs::remove_all(out);
  }

  static constexpr const char* kTiny = "--seeds 1 --limit-train 256 --limit-test 100 --threads 2";
  fs::path dir_;
};

TEST_F(ExperimentCli, BnVsNoBnWritesCurvesForBothRecipes) {
  const auto csv = run_and_check("bn-vs-nobn", "", "run,model,recipe,seed,step,train_loss,test_loss,test_accuracy,status",
                                 {"bn-vs-nobn"});
  // Four runs, each from step 0: 4 points and the final evaluation, or fewer if it diverged.
  int starts = 0;
  for (const std::string& line : csv) starts += line.find(",0,nan,") != std::string::npos;
  EXPECT_EQ(starts, 4);
}

TEST_F(ExperimentCli, PlacementReportsEveryVariant) {
  const auto csv = run_and_check("placement", "", "run,model,seed,step,train_loss,test_loss,test_accuracy,status", {"placement"});
  EXPECT_EQ(csv.size(), 1u + 4 * 5);  // 4 variants x (steps 0..3 + final)
  const std::string report = read_file(dir_ / "report.md");
  for (const char* v : {"`seed`", "`seed-bn-after-relu`", "`seed-bn-conv-only`", "`seed-nobn`"})
    EXPECT_NE(report.find(v), std::string::npos) << v;
}

TEST_F(ExperimentCli, PaperFig1RecordsPercentiles) {
  const auto csv = run_and_check("paper-fig1", "", "run,model,seed,step,train_loss,test_loss,test_accuracy,status,p15,p50,p85",
                                 {"paper-fig1"});
  ASSERT_EQ(csv.size(), 1u + 2 * 5);
  EXPECT_EQ(fields(csv[1]), 11u);
  EXPECT_EQ(csv[1].find("nan,nan,nan"), std::string::npos) << "no percentiles at step 0: " << csv[1];
}

TEST_F(ExperimentCli, DepthTrainsEveryVariantAndMeasuresGradients) {
  // Two small depths keep the test short (under the sanitizers too); the default is 10,20,50,110.
  const auto csv = run_and_check("depth", "--steps 2 --eval-every 2 --depths 4,12",
                                 "run,variant,depth,lr,seed,step,layer,metric,value", {"depth"});
  int grads = 0;
  for (const std::string& line : csv) grads += line.find(",grad_norm,") != std::string::npos;
  EXPECT_EQ(grads, 3 * (4 + 12));  // one per Linear layer of every variant and depth
  const std::string report = read_file(dir_ / "report.md");
  EXPECT_NE(report.find("--depths 4,12"), std::string::npos) << "the report's command omits the flag";
}

TEST_F(ExperimentCli, OwnFlagsAreCheckedAndBelongToTheirExperiment) {
  const CommandResult odd = bnlab(std::string("experiment depth ") + kTiny + " --steps 1 --depths 4,5 --out " + dir_.string());
  EXPECT_EQ(odd.status, 2) << odd.out;
  EXPECT_NE(odd.out.find("--depths"), std::string::npos) << odd.out;
  EXPECT_NE(odd.out.find("even"), std::string::npos) << odd.out;
  const CommandResult junk = bnlab(std::string("experiment depth ") + kTiny + " --steps 1 --depths 4,x --out " + dir_.string());
  EXPECT_EQ(junk.status, 2) << junk.out;
  EXPECT_NE(junk.out.find("'4,x' is not a comma-separated list of integers"), std::string::npos) << junk.out;
  const CommandResult huge = bnlab(std::string("experiment depth ") + kTiny + " --steps 1 --depths 100000 --out " + dir_.string());
  EXPECT_EQ(huge.status, 2) << huge.out;
  EXPECT_NE(huge.out.find("outside 2 to 1000"), std::string::npos) << huge.out;
  const CommandResult foreign = bnlab(std::string("experiment placement ") + kTiny + " --steps 1 --depths 4 --out " + dir_.string());
  EXPECT_EQ(foreign.status, 2) << foreign.out;
  EXPECT_NE(foreign.out.find("--depths: not a flag of experiment placement"), std::string::npos) << foreign.out;
  EXPECT_FALSE(fs::exists(dir_)) << "a refused flag wrote into --out nevertheless";
}

TEST_F(ExperimentCli, ActivationsRecordsEveryReluInput) {
  const auto csv = run_and_check("activations", "", "run,model,seed,step,relu,point,layer,mean,std", {"activations"});
  EXPECT_EQ(csv.size(), 1u + 3 * (3 + 6));  // steps 1..3: 3 ReLU inputs without BN; 3 + 3 BN inputs with
}

// The value of `metric` in the run `run` (rows: run,norm,order,seed,step,metric,value).
double metric_of(const std::vector<std::string>& csv, const std::string& run, const std::string& metric) {
  for (const std::string& line : csv)
    if (line.rfind(run + ",", 0) == 0 && line.find("," + metric + ",") != std::string::npos)
      return std::stod(line.substr(line.rfind(',') + 1));
  ADD_FAILURE() << "no " << metric << " for " << run;
  return -1;
}

TEST_F(ExperimentCli, BatchCompositionSeparatesBatchStatisticsFromTheWeights) {
  const auto csv = run_and_check("batch-composition", "--steps 3 --probe-images 4 --mate-sets 3",
                                 "run,norm,order,seed,step,metric,value", {"batch-composition"});
  // 6 runs x (4 curve points x 2 metrics + 3 test accuracies + 6 batch-mate measures).
  EXPECT_EQ(csv.size(), 1u + 6 * (8 + 3 + 6));
  for (const char* order : {"shuffled", "class-sorted"}) {
    const std::string gn = std::string("gn/") + order + "/s1";
    // GroupNorm has no batch statistics: the same accuracy however the test batches are made,
    // and one image's output bitwise the same whatever its batch mates.
    const double running = metric_of(csv, gn, "acc_running_stats");
    EXPECT_EQ(metric_of(csv, gn, "acc_batch_stats_shuffled"), running) << order;
    EXPECT_EQ(metric_of(csv, gn, "acc_batch_stats_single_class"), running) << order;
    EXPECT_EQ(metric_of(csv, gn, "mates_max_change"), 0.0) << order;
    EXPECT_GT(metric_of(csv, std::string("bn/") + order + "/s1", "mates_max_change"), 0.0) << order;
  }
  const std::string report = read_file(dir_ / "report.md");
  EXPECT_NE(report.find("## Verdict"), std::string::npos);
  EXPECT_NE(report.find("--probe-images 4"), std::string::npos);
  // The training loss beside the accuracies: each run's last curve point (the mean of its last steps).
  EXPECT_NE(report.find("| normalizer | training batches | final training loss |"), std::string::npos) << report;
  for (const auto& [norm, label] : {std::pair{"bn", "BatchNorm"}, std::pair{"gn", "GroupNorm (8 groups)"}}) {
    for (const char* order : {"shuffled", "class-sorted"}) {
      const std::string run = std::string(norm) + "/" + order + "/s1";
      double loss = std::nan(""), last_step = -1;
      for (const std::string& line : csv) {
        const auto f = split_fields(line);  // run,norm,order,seed,step,metric,value
        if (f.size() == 7 && f[0] == run && f[5] == "train_loss" && std::stod(f[4]) > last_step) {
          last_step = std::stod(f[4]);
          loss = std::stod(f[6]);
        }
      }
      ASSERT_EQ(last_step, 3) << run;
      char cell[32];
      std::snprintf(cell, sizeof cell, "%.4f", loss);
      EXPECT_NE(report.find("| " + std::string(label) + " | " + order + " | " + cell + " |"), std::string::npos)
          << run << ": training loss " << cell << "\n" << report;
    }
  }
  expect_budget_and_verdict(report, "3 steps (192 images) per run", "In training, BN's loss on its single-class batches",
                            {"**training looks fine**", "training itself suffers", "no comparison (a run diverged)"});
}

TEST_F(ExperimentCli, BatchCompositionRefusesBadProbeFlags) {
  for (const char* bad : {"--probe-images 0", "--probe-images 101", "--mate-sets 1", "--mate-sets two"})
    expect_flag_refused("batch-composition", bad);
}

TEST_F(ExperimentCli, RobustnessAttacksEveryModelAndFgsmRaisesTheLoss) {
  const auto csv = run_and_check("robustness", "--steps 3 --test-images 50 --noise 0.3,0.6 --eps 0.01,0.2",
                                 "run,model,seed,attack,strength,accuracy,loss", {"robustness"});
  ASSERT_EQ(csv.size(), 1u + 2 * (1 + 2 + 2));  // 2 models x (clean + 2 noise levels + 2 FGSM steps)
  for (const char* model : {"seed/s1", "seed-nobn/s1"}) {
    double clean = -1, fgsm = -1;
    for (const std::string& line : csv) {
      if (line.rfind(std::string(model) + ",", 0) != 0) continue;
      const double loss = std::stod(line.substr(line.rfind(',') + 1));
      if (line.find(",clean,0,") != std::string::npos) clean = loss;
      if (line.find(",fgsm,0.01,") != std::string::npos) fgsm = loss;
    }
    // A small step along the sign of the input gradient raises the loss (to first order by eps
    // times the gradient's L1 norm): a wrong sign or a gradient of another mode would lower it.
    EXPECT_GT(fgsm, clean) << model;
  }
  const std::string report = read_file(dir_ / "report.md");
  expect_budget_and_verdict(report, "3 steps per run; then, in eval mode, the first 50 test images", "## Verdict",
                            {"**Held**", "**Held in part**", "**Not held**"});
  EXPECT_NE(report.find(" of 2 strengths"), std::string::npos) << "the verdict counts the two noise levels asked for\n" << report;
}

TEST_F(ExperimentCli, RobustnessRefusesBadStrengths) {
  for (const char* bad : {"--eps 0", "--eps 0.1,x", "--noise -1", "--test-images 101"}) expect_flag_refused("robustness", bad);
}

TEST_F(ExperimentCli, InputNormalizationWithBnIsTheSameTrainingAtEveryScale) {
  const auto csv = run_and_check("input-normalization", "--steps 6 --eval-every 3",
                                 "run,model,recipe,scale,seed,layer,grad_norm,step,train_loss,test_loss,test_accuracy,status",
                                 {"input-normalization", "input-normalization-gradients"});
  // (run, step) -> training loss; run -> the gradient norm of each weight at initialization.
  std::map<std::string, double> loss, grad;
  for (size_t i = 1; i < csv.size(); ++i) {
    const auto f = split_fields(csv[i]);
    ASSERT_EQ(f.size(), 12u) << csv[i];
    if (f[11] == "grad") grad[f[0] + "," + f[5]] = std::stod(f[6]);
    if (f[11] == "curve" && f[8] != "nan") loss[f[0] + "," + f[7]] = std::stod(f[8]);
  }
  EXPECT_EQ(grad.size(), 2u * 3 * 4);  // two models, three scalings, four weights
  // BN after conv1 removes any scale and shift of the pixels: the same loss at every step (eps
  // and rounding aside), and the same first gradient; without BN raw pixels are another problem.
  for (const char* recipe : {"adadelta", "sgd"}) {
    for (int step = 1; step <= 6; ++step) {
      const std::string at = "/s1," + std::to_string(step);
      const std::string bn = std::string("seed/") + recipe + "/", plain = std::string("seed-nobn/") + recipe + "/";
      ASSERT_TRUE(loss.count(bn + "raw" + at) && loss.count(bn + "standardize" + at)) << recipe << " " << step;
      EXPECT_NEAR(loss[bn + "raw" + at], loss[bn + "standardize" + at], 0.02 * loss[bn + "standardize" + at]) << recipe << step;
      EXPECT_NEAR(loss[bn + "unit" + at], loss[bn + "standardize" + at], 0.02 * loss[bn + "standardize" + at]) << recipe << step;
      if (step == 6) {
        EXPECT_GT(std::abs(loss[plain + "raw" + at] - loss[plain + "standardize" + at]), 0.1) << recipe;
      }
    }
  }
  EXPECT_NEAR(grad["grad/seed/raw,conv1.weight"], grad["grad/seed/standardize,conv1.weight"],
              0.01 * grad["grad/seed/standardize,conv1.weight"]);
  EXPECT_GT(grad["grad/seed-nobn/raw,conv1.weight"], 100 * grad["grad/seed-nobn/unit,conv1.weight"]);
  expect_budget_and_verdict(read_file(dir_ / "report.md"), "6 steps (384 images) per run", "**Verdict.**",
                            {"**Held**", "**Held in part**", "**Not held**"});
  expect_flag_refused("input-normalization", "--sgd-lr 0");
}

TEST_F(ExperimentCli, WeightDecayChecksScaleInvarianceAndTracksTheNorms) {
  const auto csv = run_and_check("weight-decay", "--steps 4 --eval-every 2 --lrs 0.05,0.1 --products 0,1e-3",
                                 "run,lr,lr_wd,seed,step,layer,metric,value", {"weight-decay"});
  std::map<std::string, double> value;  // "run,step,layer,metric" -> value
  for (size_t i = 1; i < csv.size(); ++i) {
    const auto f = split_fields(csv[i]);
    ASSERT_EQ(f.size(), 8u) << csv[i];
    value[f[0] + "," + f[4] + "," + f[5] + "," + f[6]] = std::stod(f[7]);
  }
  // x10 before a BN: the same outputs (eps aside) and a tenth of the gradient; fc2 is not invariant.
  for (const char* layer : {"conv1", "conv2", "fc1"}) {
    EXPECT_LT(value.at(std::string("invariance,0,") + layer + ",output_change"), 1e-3) << layer;
    EXPECT_NEAR(value.at(std::string("invariance,0,") + layer + ",grad_ratio"), 0.1, 1e-3) << layer;
  }
  EXPECT_GT(value.at("invariance,0,fc2,output_change"), 0.1);
  // Norms at steps 0, 2, 4 for every weight of every run; without weight decay conv2's grows
  // (its gradient is orthogonal to it), and with decay its effective rate is lr / ||w||^2.
  for (const char* run : {"lr0.05/lrwd0/s1", "lr0.1/lrwd0/s1", "lr0.05/lrwd0.001/s1", "lr0.1/lrwd0.001/s1"})
    for (const char* step : {"0", "2", "4"})
      for (const char* layer : {"conv1", "conv2", "fc1", "fc2"})
        EXPECT_TRUE(value.count(std::string(run) + "," + step + "," + layer + ",weight_norm")) << run << " " << step << " " << layer;
  EXPECT_GT(value.at("lr0.1/lrwd0/s1,4,conv2,weight_norm"), value.at("lr0.1/lrwd0/s1,0,conv2,weight_norm"));
  const double w = value.at("lr0.1/lrwd0.001/s1,4,conv2,weight_norm");
  EXPECT_NEAR(value.at("lr0.1/lrwd0.001/s1,4,conv2,effective_lr"), 0.1 / (w * w), 1e-6);
  const std::string report = read_file(dir_ / "report.md");
  expect_budget_and_verdict(report, "4 steps per run", "**Verdict.**", {"**scale invariance held**", "**scale invariance not shown**"});
  expect_budget_and_verdict(report, "4 steps per run", "**Verdict.**",
                            {"**the product mattered more than the learning rate alone**", "**the product did not (yet) decide it**"});
  // Each learning rate's run with decay against its run without: two comparisons, counted.
  EXPECT_NE(report.find(" of 2 runs and raised it in "), std::string::npos) << report;
  expect_flag_refused("weight-decay", "--products -1");
  expect_flag_refused("weight-decay", "--lrs 0");
}

TEST_F(ExperimentCli, BatchSizeSeesTheSameImagesAtEveryBatchSize) {
  if (!fs::exists("/usr/share/datasets/fashion-mnist")) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  // 4 steps of 64: 256 images per run, so 128 steps at batch 2 and 32 at batch 8.
  const auto csv = run_and_check("batch-size", "--steps 4 --sizes 2,8",
                                 "run,norm,mode,norm_batch,optimizer_batch,lr,seed,step,metric,value", {"batch-size"});
  std::map<std::string, std::vector<std::string>> final_rows;  // run -> its test_error row
  for (const std::string& line : csv)
    if (line.find(",test_error,") != std::string::npos) final_rows[line.substr(0, line.find(','))] = split_fields(line);
  ASSERT_EQ(final_rows.size(), 4u * 2 + 2) << "four normalizers at two sizes and BN's two ghost-batch runs";
  for (const char* norm : {"bn", "gn", "ln", "renorm"}) {
    for (int size : {2, 8}) {
      const std::string run = std::string(norm) + "/same/" + std::to_string(size) + "/s1";
      ASSERT_TRUE(final_rows.count(run)) << run;
      const auto& f = final_rows[run];
      EXPECT_EQ(f[4], std::to_string(size)) << run << ": optimizer batch";
      EXPECT_EQ(f[7], std::to_string(256 / size)) << run << ": steps";
      const double error = std::stod(f[9]);
      EXPECT_GE(error, 0.0);
      EXPECT_LE(error, 100.0);
    }
  }
  for (int size : {2, 8}) {
    const std::string run = "bn/ghost/" + std::to_string(size) + "/s1";
    ASSERT_TRUE(final_rows.count(run)) << run;
    EXPECT_EQ(final_rows[run][3], std::to_string(size)) << run;
    EXPECT_EQ(final_rows[run][4], "64") << run << ": ghost batches within the optimizer's batch of 64";
    EXPECT_EQ(final_rows[run][7], "4") << run << ": 256 images in steps of 64";
  }
  const std::string report = read_file(dir_ / "report.md");
  EXPECT_NE(report.find("Data: fashion-mnist"), std::string::npos) << "the experiment's default data set";
  EXPECT_NE(report.find("## Verdict"), std::string::npos);
  EXPECT_NE(report.find("--sizes 2,8"), std::string::npos);
}

TEST_F(ExperimentCli, BatchSizeRefusesBadSizesAndRates) {
  if (!fs::exists("/usr/share/datasets/fashion-mnist")) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  for (const char* bad : {"--sizes 3", "--sizes 2,2", "--sizes 128", "--sizes 1", "--sizes 2,x", "--base-lr 0", "--base-lr fast"})
    expect_flag_refused("batch-size", bad);
}

TEST_F(ExperimentCli, TrainEvalGapMeasuresWithoutDisturbingTraining) {
  const auto csv = run_and_check("train-eval-gap", "--steps 4 --eval-every 2 --precise-batches 2",
                                 "run,recipe,variant,seed,step,channel,metric,value", {"train-eval-gap"});
  std::map<std::string, double> value;  // "run,step,channel,metric" -> value
  int ratios = 0;
  for (size_t i = 1; i < csv.size(); ++i) {
    const auto f = split_fields(csv[i]);
    ASSERT_EQ(f.size(), 8u) << csv[i];
    value[f[0] + "," + f[4] + "," + f[5] + "," + f[6]] = std::stod(f[7]);
    if (f[6] == "var_ratio_eval") {
      ++ratios;
      EXPECT_GT(std::stod(f[7]), 0.0) << csv[i];
    }
  }
  EXPECT_EQ(ratios, 4 * 128);  // 2 recipes x 2 networks x fc1's 128 channels
  for (const char* metric : {"acc_ema", "acc_precise", "acc_precise_dropout_off"})
    for (const char* step : {"0", "2", "4"})
      EXPECT_TRUE(value.count(std::string("adadelta/seed/s1,") + step + ",," + metric)) << metric << " " << step;
  // Precise BN puts the running statistics back: the run's EMA curve is bn-vs-nobn's seed run,
  // the same seed, recipe, steps and evaluations, to the bit.
  const fs::path plain = dir_.string() + "_plain";
  const CommandResult r = bnlab(std::string("experiment bn-vs-nobn ") + kTiny + " --steps 4 --eval-every 2 --out " + plain.string());
  ASSERT_EQ(r.status, 0) << r.out;
  const auto reference = lines_of(read_file(plain / "results.csv"));
  fs::remove_all(plain);
  int compared = 0;
  for (const std::string& line : reference) {
    const auto f = split_fields(line);  // run,model,recipe,seed,step,train_loss,test_loss,test_accuracy,status
    if (f.size() != 9 || f[0] != "seed/adadelta/s1" || f[8] != "curve" || f[7] == "nan") continue;
    EXPECT_EQ(value.at("adadelta/seed/s1," + f[4] + ",,acc_ema"), std::stod(f[7])) << "step " << f[4];
    ++compared;
  }
  EXPECT_EQ(compared, 3);
  const std::string report = read_file(dir_ / "report.md");
  expect_budget_and_verdict(report, "4 steps per run", "**Verdict.**", {"**Held**", "**Not held**"});
  EXPECT_NE(report.find("1 seed and 4 steps"), std::string::npos) << "the seeds and steps actually run\n" << report;
  expect_flag_refused("train-eval-gap", "--precise-batches 0");
}

TEST_F(ExperimentCli, DeepResidualMeasuresBranchesAtInitAndTrainsEveryVariant) {
  if (!fs::exists("/usr/share/datasets/fashion-mnist")) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  // ResNets of 8 and 14 layers (1 and 2 blocks per stage); --steps 4 is ResNet-20's budget, so
  // 8 layers get 4 * 20 / 8 = 10 steps and 14 layers 5.
  const auto csv = run_and_check("deep-residual", "--steps 4 --depths 8,14",
                                 "run,variant,depth,seed,steps,step,block,metric,value", {"deep-residual"});
  std::map<std::string, std::vector<double>> metric;  // "run,metric" -> values in block order
  std::map<std::string, std::string> steps;           // run -> its steps column
  for (size_t i = 1; i < csv.size(); ++i) {
    const auto f = split_fields(csv[i]);
    ASSERT_EQ(f.size(), 9u) << csv[i];
    metric[f[0] + "," + f[7]].push_back(std::stod(f[8]));
    steps[f[0]] = f[4];
  }
  for (const char* variant : {"bn", "none", "skipinit", "fixup"}) {
    for (const auto& [depth, blocks, run_steps] : {std::tuple{8, 3u, "10"}, std::tuple{14, 6u, "5"}}) {
      const std::string run = std::string(variant) + "/d" + std::to_string(depth) + "/s1";
      EXPECT_EQ(steps[run], run_steps) << run;
      const auto& branch = metric[run + ",var_branch"];
      const auto& skip = metric[run + ",var_skip"];
      ASSERT_EQ(branch.size(), blocks) << run << ": a branch variance per block";
      ASSERT_EQ(skip.size(), blocks) << run;
      for (size_t b = 0; b < blocks; ++b) {
        EXPECT_GT(skip[b], 0.0) << run << " block " << b + 1;
        // SkipInit's scalar and Fixup's zero convolution start every branch at exactly 0
        if (std::string(variant) == "skipinit" || std::string(variant) == "fixup") EXPECT_EQ(branch[b], 0.0) << run;
        else EXPECT_GT(branch[b], 0.0) << run;
      }
      EXPECT_TRUE(metric.count(run + ",final_accuracy") || metric.count(run + ",diverged")) << run;
    }
  }
  // Without normalization He-normal branches add variance block after block.
  const auto& out = metric["none/d14/s1,var_output"];
  ASSERT_EQ(out.size(), 6u);
  EXPECT_GT(out.back(), 4 * out.front());
  const std::string report = read_file(dir_ / "report.md");
  EXPECT_NE(report.find("Data: fashion-mnist"), std::string::npos);
  EXPECT_NE(report.find("**Verdict.**"), std::string::npos);
  EXPECT_NE(report.find("10 at 8 layers, 5 at 14 layers"), std::string::npos) << "the steps each depth got";
  for (const char* bad : {"--depths 21", "--depths 2", "--depths 20,x"}) expect_flag_refused("deep-residual", bad);
}

// The rows of the landscape runs that training alone determines (curves and final accuracies).
std::vector<std::string> training_rows(const std::vector<std::string>& csv) {
  std::vector<std::string> rows;
  for (const std::string& line : csv)
    if (line.rfind("landscape/", 0) == 0 && (line.find(",train_loss,") != std::string::npos ||
                                             line.find(",test_accuracy,") != std::string::npos ||
                                             line.find(",final_accuracy,") != std::string::npos))
      rows.push_back(line);
  return rows;
}

TEST_F(ExperimentCli, SmoothnessProbesLeaveTrainingUntouched) {
  const auto csv = run_and_check("smoothness", "--steps 4 --eval-every 2 --probe-every 2 --etas 0.1,0.4",
                                 "run,model,part,seed,step,metric,value", {"smoothness-noise", "smoothness-landscape"});
  int probes = 0;
  for (const std::string& line : csv) {
    if (line.find(",beta,") == std::string::npos) continue;
    ++probes;
    EXPECT_GT(std::stod(line.substr(line.rfind(',') + 1)), 0.0) << line;
  }
  EXPECT_EQ(probes, 2 * 3);  // BN and no BN, at steps 1, 2 and 4
  for (const char* model : {"noise/seed/s1", "noise/noisy-bn/s1", "noise/seed-nobn/s1"})
    EXPECT_NE(std::find_if(csv.begin(), csv.end(), [&](const std::string& l) { return l.rfind(std::string(model) + ",", 0) == 0; }),
              csv.end()) << model;
  // The same runs without probes: the same training, bit for bit.
  const fs::path plain = dir_.string() + "_plain";
  const CommandResult r = bnlab(std::string("experiment smoothness ") + kTiny +
                                " --steps 4 --eval-every 2 --probe-every 0 --etas 0.1,0.4 --out " + plain.string());
  ASSERT_EQ(r.status, 0) << r.out;
  const auto without = lines_of(read_file(plain / "results.csv"));
  fs::remove_all(plain);
  EXPECT_FALSE(training_rows(csv).empty());
  EXPECT_EQ(training_rows(csv), training_rows(without));
  const std::string report = read_file(dir_ / "report.md");
  expect_budget_and_verdict(report, "4 steps per run", "## (a) Noisy BN", {"**Held**", "**Not held**"});
  EXPECT_NE(report.find("0.5-point margin"), std::string::npos) << "noisy BN is held against BN by a stated margin\n" << report;
  expect_budget_and_verdict(report, "4 steps per run", "## (b) Along the gradient", {"**Held**", "**Held in part**", "**Not held**"});
  expect_flag_refused("smoothness", "--etas 0");
  expect_flag_refused("smoothness", "--lr x");
}

TEST_F(ExperimentCli, RerunSkipsFinishedRunsAndRefusesAnotherBudget) {
  const std::string args = std::string("experiment placement ") + kTiny + " --steps 2 --out " + dir_.string();
  ASSERT_EQ(bnlab(args).status, 0);
  const std::string first = read_file(dir_ / "results.csv");
  const CommandResult again = bnlab(args);
  ASSERT_EQ(again.status, 0) << again.out;
  EXPECT_NE(again.out.find("4 runs (4 from earlier results)"), std::string::npos) << again.out;
  EXPECT_EQ(read_file(dir_ / "results.csv"), first);

  const CommandResult other = bnlab(std::string("experiment placement ") + kTiny + " --steps 4 --out " + dir_.string());
  EXPECT_EQ(other.status, 2);
  EXPECT_NE(other.out.find("steps=2"), std::string::npos) << other.out;
  EXPECT_EQ(bnlab(std::string("experiment placement ") + kTiny + " --steps 4 --fresh --out " + dir_.string()).status, 0);
}

TEST_F(ExperimentCli, InterruptedExperimentKeepsFinishedRuns) {
  const std::string log = (dir_.string() + ".log");
  const std::string args = std::string("experiment placement ") + kTiny + " --steps 20 --eval-every 10 --out " + dir_.string();
  const pid_t pid = fork();
  if (pid == 0) {
    const std::string command = "exec " + std::string(BNLAB_BINARY) + " " + args + " > " + log + " 2>&1";
    execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  // Wait for the first finished run on disk, then interrupt.
  int status = 0;
  bool exited = false;
  for (int i = 0; i < 1500 && !fs::exists(dir_ / "results.csv") && !exited; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    exited = waitpid(pid, &status, WNOHANG) == pid;
  }
  if (!exited) {
    kill(pid, SIGINT);
    waitpid(pid, &status, 0);
  }
  ASSERT_TRUE(fs::exists(dir_ / "results.csv")) << read_file(log);
  const auto kept = lines_of(read_file(dir_ / "results.csv"));
  ASSERT_GE(kept.size(), 1u + 4);  // at least one whole run: steps 0, 10, 20 and the final row
  EXPECT_EQ((kept.size() - 1) % 4, 0u) << "a run was written in part";

  const CommandResult rerun = bnlab(args);
  ASSERT_EQ(rerun.status, 0) << rerun.out;
  const size_t done = (kept.size() - 1) / 4;
  EXPECT_NE(rerun.out.find("4 runs (" + std::to_string(done) + " from earlier results)"), std::string::npos) << rerun.out;
  EXPECT_EQ(lines_of(read_file(dir_ / "results.csv")).size(), 1u + 4 * 4);
  fs::remove(log);
}

TEST_F(ExperimentCli, UnknownExperimentIsABadFlag) {
  const CommandResult r = bnlab("experiment no-such-thing");
  EXPECT_EQ(r.status, 2) << r.out;
  const CommandResult help = bnlab("experiment --help");
  EXPECT_EQ(help.status, 0);
  // The positional's choices, "name TEXT:{a,b,...}": every experiment, each a whole entry.
  const size_t from = help.out.find('{', help.out.find("name TEXT")), to = help.out.find('}', from);
  ASSERT_NE(to, std::string::npos) << help.out;
  const std::vector<std::string> listed = split_fields(help.out.substr(from + 1, to - from - 1));
  const std::vector<std::string> all = {"bn-vs-nobn", "placement", "paper-fig1", "depth", "activations",
                                        "batch-composition", "robustness", "smoothness", "input-normalization",
                                        "weight-decay", "batch-size", "train-eval-gap", "deep-residual"};
  EXPECT_EQ(listed.size(), all.size()) << help.out;
  for (const std::string& name : all)
    EXPECT_NE(std::find(listed.begin(), listed.end(), name), listed.end()) << name << " missing from:\n" << help.out;
}

}  // namespace
