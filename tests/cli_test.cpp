// The bnlab command end to end on a slice of real MNIST: flags, outputs, files, exit codes.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

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

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("bnlab_cli_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

const char* kQuick = "--limit-train 640 --limit-test 500 --batch-size 64 --threads 2";

TEST_F(Cli, TrainSavesEvaluatesAndWritesMetrics) {
  const CommandResult train = bnlab(std::string("train ") + kQuick + " --save " + path("m.safetensors") +
                          " --metrics " + path("m.csv") + " --log-interval 5");
  ASSERT_EQ(train.status, 0) << train.out;
  EXPECT_NE(train.out.find("test accuracy: "), std::string::npos) << train.out;
  std::istringstream csv(read_file(path("m.csv")));
  std::string line;
  std::getline(csv, line);
  EXPECT_EQ(line, "step,epoch,train_loss,test_loss,test_accuracy,lr,seconds");
  int rows = 0, epoch_rows = 0;
  while (std::getline(csv, line)) {
    ++rows;
    if (line.find(",,") == std::string::npos) ++epoch_rows;
  }
  EXPECT_EQ(rows, 3);  // steps 5 and 10, then the epoch row
  EXPECT_EQ(epoch_rows, 1);

  const CommandResult eval = bnlab("eval --weights " + path("m.safetensors") + " --limit-test 500");
  ASSERT_EQ(eval.status, 0) << eval.out;
  // Eval reproduces the accuracy that training reported for the same test images.
  const auto acc = [](const std::string& out) { return out.substr(out.find("test accuracy: "), 21); };
  EXPECT_EQ(acc(train.out), acc(eval.out));
}

TEST_F(Cli, SameSeedSameThreadsGiveIdenticalCheckpoints) {
  for (const char* name : {"a", "b"}) {
    const CommandResult r = bnlab(std::string("train ") + kQuick + " --max-steps 6 --save " + path(name));
    ASSERT_EQ(r.status, 0) << r.out;
  }
  EXPECT_EQ(read_file(path("a")), read_file(path("b")));
  const CommandResult other = bnlab(std::string("train ") + kQuick + " --max-steps 6 --seed 2 --save " + path("c"));
  ASSERT_EQ(other.status, 0);
  EXPECT_NE(read_file(path("a")), read_file(path("c")));
}

TEST_F(Cli, FashionMnistTrainsWithTheSameCommand) {
  if (!fs::exists("/usr/share/datasets/fashion-mnist")) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  const CommandResult r = bnlab(std::string("train --data fashion-mnist ") + kQuick + " --max-steps 5");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("test accuracy: "), std::string::npos);
}

TEST_F(Cli, OptimizersAndPresetsRun) {
  for (const std::string extra : {"--optimizer sgd --lr 0.05 --momentum 0.9 --nesterov", "--optimizer adam --lr 0.001",
                                  "--optimizer adamw --lr 0.001 --weight-decay 0.01", "--model seed-nobn",
                                  "--model seed-bn-after-relu"}) {
    const CommandResult r = bnlab(std::string("train ") + kQuick + " --max-steps 3 " + extra);
    EXPECT_EQ(r.status, 0) << extra << "\n" << r.out;
  }
}

// Every numeric flag is checked before any work: one line naming the flag and its range in words,
// exit 2, nothing written, no allocation attempted for an absurd value.
TEST_F(Cli, BadFlagValuesAreOneLineErrors) {
  const std::pair<std::string, std::string> table[] = {
      {"train --batch-size 0", "--batch-size: 0 is out of range: 1 to 67108864"},
      {"train --batch-size 100000", "--batch-size: 100000 is out of range for this network: 1 to 1820 (a layer's output would exceed 67108864 values)"},
      {"train --test-batch-size 1000000", "--test-batch-size: 1000000 is out of range for this network: 1 to 85598 (a layer's output would exceed 67108864 values)"},
      {"train --lr nan", "--lr: 'nan' is not a finite number from 0 to 3.4e38 (the largest float)"},
      {"train --lr -1", "--lr: -1 is out of range: 0 to 3.4e38 (the largest float)"},
      {"train --gamma 0", "--gamma: 0 is out of range: above 0 to 3.4e38 (the largest float)"},
      {"train --threads 5000", "--threads: 5000 is out of range: 0 (all cores) to 1024"},
      {"train --epochs abc", "--epochs: 'abc' is not a whole number from 1 to 1,000,000"},
      {"train --max-steps -1", "--max-steps: -1 is out of range: 0 (no limit) to 10^12"},
      {"train --bucket-kb -5", "--bucket-kb: -5 is out of range: 0 to 1048576 (1 GiB)"},
      {"train --accumulate 0", "--accumulate: 0 is out of range: 1 to 67108864"},
      {"train --accumulate 3", "--accumulate: 3 does not divide --batch-size 64"},
      {"train --precise-bn -1", "--precise-bn: -1 is out of range: 0 (off) to 10^12"},
      {"train --precise-bn 1000", "--precise-bn: 1000 batches of 64 are more than the 60000 training images hold (937)"},
      {"train --init-from a.safetensors --resume b.safetensors", "--init-from: cannot be combined with --resume (a resumed run continues from its own checkpoint)"},
      {"recalibrate --weights w.safetensors --out o.safetensors --batches 0", "--batches: 0 is out of range: 1 to 10^12"},
      {"recalibrate --weights w.safetensors --out o.safetensors --batches 2000", "--batches: 2000 batches of 64 are more than the 60000 training images hold (937)"},
      {"recalibrate --weights w.safetensors --out o.safetensors --dropout maybe", "--dropout: maybe not in {on,off}"},
      {"recalibrate --weights w.safetensors --out o.safetensors --batch-size 100000", "--batch-size: 100000 is out of range for this network: 1 to 1820 (a layer's output would exceed 67108864 values)"},
      {"eval --weights w.safetensors --threads -1", "--threads: -1 is out of range: 0 (all cores) to 1024"},
      {"eval --weights w.safetensors --test-batch-size 0", "--test-batch-size: 0 is out of range: 1 to 67108864"},
      {"experiment depth --steps 0", "--steps: 0 is out of range: 1 to 10^12"},
      {"experiment depth --seeds 5000", "--seeds: 5000 is out of range: 1 to 1000"},
      {"predict --top 0 a.png", "--top: 0 is out of range: 1 to 1000"},
      {"serve --port 70000", "--port: 70000 is out of range: 0 to 65535"},
      {"serve --idle-stop 0", "--idle-stop: 0 is out of range: 0.1 to 86400"},
      {"summary --input 0x28x28", "summary: --input: expected CxHxW (or CxL, or C) with positive sizes, got '0x28x28'"},
      {"summary --input 1x100000x100000", "preset:seed:2:11: Conv2d: input: 1x100000x100000 is too large (more than 67108864 values)"},
      {"export --weights w.safetensors --out o.safetensors --input 1xx28", "--input: '1xx28' is not a shape like 1x28x28"},
      {"export --weights w.safetensors --out o.onnx --format tflite", "--format: tflite not in {safetensors,onnx}"},
      {"export --weights w.safetensors --out o.safetensors --with-preprocessing", "--with-preprocessing: applies to --format onnx only"},
      {"export --format onnx --weights w.safetensors --out o.onnx --spec-out o.spec", "--spec-out: applies to --format safetensors only"},
  };
  for (const auto& [args, message] : table) {
    const bool trains = args.rfind("train ", 0) == 0;
    const CommandResult r = bnlab(args + (trains ? " --save " + path("never.safetensors") : ""));
    EXPECT_EQ(r.status, 2) << args;
    EXPECT_EQ(r.out, "bnlab: " + message + "\n") << args;
    EXPECT_FALSE(std::filesystem::exists(path("never.safetensors"))) << args;
  }
}

TEST_F(Cli, BadInputExitsTwoWithOneLine) {
  const CommandResult no_dir = bnlab("train --data " + path("missing"));
  EXPECT_EQ(no_dir.status, 2);
  EXPECT_EQ(no_dir.out, "bnlab: " + path("missing") + ": data: not a directory, nor mnist or fashion-mnist\n");

  std::ofstream(path("bad.spec")) << "conv1: Conv2d out_channels=8 kernel_size=3\nfc: Linear out_features=10\n";
  const CommandResult bad_spec = bnlab("train --model " + path("bad.spec"));
  EXPECT_EQ(bad_spec.status, 2);
  EXPECT_EQ(bad_spec.out, "bnlab: " + path("bad.spec") +
                              ":2:5: Linear: input: expects (features) per sample, got 8x26x26 (add Flatten before it)\n");

  // Without LogSoftmax the NLL loss would train against raw scores, to a negative loss: refused.
  std::ofstream(path("raw.spec")) << "Flatten\nfc: Linear out_features=10\n";
  const CommandResult raw = bnlab("train --max-steps 1 --limit-train 64 --limit-test 64 --model " + path("raw.spec"));
  EXPECT_EQ(raw.status, 2);
  EXPECT_EQ(raw.out, "bnlab: network: output: the last layer is Linear 'fc'; the NLL loss needs log-probabilities: "
                     "end the network with LogSoftmax\n");

  setenv("BNLAB_MAX_CPU_ISA", "sse9", 1);
  const CommandResult bad_isa = bnlab("summary");
  unsetenv("BNLAB_MAX_CPU_ISA");
  EXPECT_EQ(bad_isa.status, 2);
  EXPECT_EQ(bad_isa.out, "bnlab: BNLAB_MAX_CPU_ISA: 'sse9' is not one of avx512, avx2, baseline\n");

  std::ofstream(path("junk.safetensors")) << "not a checkpoint at all";
  const CommandResult bad_ckpt = bnlab("eval --weights " + path("junk.safetensors"));
  EXPECT_EQ(bad_ckpt.status, 2);
  EXPECT_EQ(bad_ckpt.out.rfind("bnlab: " + path("junk.safetensors") + ": header: length ", 0), 0u) << bad_ckpt.out;

  EXPECT_EQ(bnlab("train --epochs 0").status, 2);
  EXPECT_EQ(bnlab("train --no-such-flag").status, 2);
  EXPECT_EQ(bnlab("").status, 2);
}

// --input-scale goes into the checkpoint; every command that loads it uses it, and refuses another.
TEST_F(Cli, InputScaleIsKeptWithTheCheckpoint) {
  const std::string m = path("raw.safetensors");
  const CommandResult train = bnlab(std::string("train ") + kQuick + " --max-steps 4 --input-scale raw --save " + m);
  ASSERT_EQ(train.status, 0) << train.out;
  EXPECT_NE(read_file(m).find(R"("bnlab.input_scale":"raw")"), std::string::npos);
  const CommandResult eval = bnlab("eval --weights " + m + " --limit-test 500");
  ASSERT_EQ(eval.status, 0) << eval.out;
  const auto acc = [](const std::string& out) { return out.substr(out.find("test accuracy: "), 21); };
  EXPECT_EQ(acc(train.out), acc(eval.out));  // eval read raw from the checkpoint
  const std::string refused = "bnlab: --input-scale: unit, but " + m + " was trained with raw\n";
  for (const std::string command : {"eval --limit-test 500", "predict"}) {
    const CommandResult r = bnlab(command + " --input-scale unit --weights " + m + (command == "predict" ? " x.png" : ""));
    EXPECT_EQ(r.status, 2) << command;
    EXPECT_EQ(r.out, refused) << command;
  }
  const CommandResult bad = bnlab(std::string("train ") + kQuick + " --input-scale zscore");
  EXPECT_EQ(bad.status, 2);
  EXPECT_NE(bad.out.find("--input-scale"), std::string::npos) << bad.out;
  EXPECT_EQ(std::count(bad.out.begin(), bad.out.end(), '\n'), 1) << bad.out;
  // export and recalibrate carry the scaling on; serve, whose page feeds standardized pixels, refuses it.
  const CommandResult exported = bnlab("export --weights " + m + " --out " + path("e.safetensors"));
  ASSERT_EQ(exported.status, 0) << exported.out;
  EXPECT_NE(read_file(path("e.safetensors")).find(R"("bnlab.input_scale":"raw")"), std::string::npos);
  const CommandResult recalibrated = bnlab("recalibrate --weights " + m + " --out " + path("r.safetensors") +
                                           " --batches 2 --limit-test 500 --threads 2");
  ASSERT_EQ(recalibrated.status, 0) << recalibrated.out;
  EXPECT_NE(read_file(path("r.safetensors")).find(R"("bnlab.input_scale":"raw")"), std::string::npos);
  const CommandResult tuned = bnlab(std::string("train ") + kQuick + " --max-steps 2 --init-from " + m);
  EXPECT_EQ(tuned.status, 2) << tuned.out;  // the default standardize is not what m was trained with
  EXPECT_NE(tuned.out.find("--input-scale: standardize, but " + m + " was trained with raw"), std::string::npos) << tuned.out;
  const CommandResult same = bnlab(std::string("train ") + kQuick + " --max-steps 2 --input-scale raw --init-from " + m);
  EXPECT_EQ(same.status, 0) << same.out;
  const CommandResult served = bnlab("serve --weights " + m + " --port 0");
  EXPECT_EQ(served.status, 2) << served.out;
  EXPECT_NE(served.out.find("another --input-scale than standardize"), std::string::npos) << served.out;
}

TEST_F(Cli, DivergenceNamesTheStepAndLayer) {
  const CommandResult r = bnlab(std::string("train ") + kQuick + " --model seed-nobn --optimizer sgd --lr 1e30");
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_NE(r.out.find("bnlab: training: step "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("first non-finite output in layer"), std::string::npos) << r.out;
}

TEST_F(Cli, HelpListsTheFlags) {
  const CommandResult r = bnlab("train --help");
  EXPECT_EQ(r.status, 0);
  for (const char* flag : {"--model", "--data", "--epochs", "--batch-size", "--test-batch-size", "--optimizer",
                           "--lr", "--gamma", "--momentum", "--seed", "--threads", "--save", "--log-interval",
                           "--max-steps", "--limit-train", "--metrics"}) {
    EXPECT_NE(r.out.find(flag), std::string::npos) << flag;
  }
}

// Every flag of every subcommand's --help has a row in that command's section of the user guide,
// and every flag the guide lists there exists.
std::set<std::string> flags_in(const std::string& text, const std::regex& pattern) {
  std::set<std::string> flags;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), pattern); it != std::sregex_iterator(); ++it) {
    flags.insert((*it)[1]);
  }
  return flags;
}

TEST(Guide, DocumentsEveryFlagOfEveryCommandAndNoOther) {
  const std::string guide = read_file(BNLAB_GUIDE);
  ASSERT_FALSE(guide.empty()) << BNLAB_GUIDE;
  for (const char* command : {"train", "eval", "recalibrate", "export", "summary", "predict", "experiment", "serve"}) {
    const CommandResult help = bnlab(std::string(command) + " --help");
    ASSERT_EQ(help.status, 0) << command;
    std::set<std::string> in_help = flags_in(help.out, std::regex(R"(\n\s+(?:-\w,)?(--[a-z0-9-]+))"));
    in_help.erase("--help");
    const std::string heading = std::string("### `bnlab ") + command + "`";
    const size_t begin = guide.find(heading);
    ASSERT_NE(begin, std::string::npos) << "no section " << heading;
    const size_t end = guide.find("\n#", begin + heading.size());
    const std::string section = guide.substr(begin, end - begin);
    // Flags in the first column of the section's tables: "| `--name ...`" (several per cell allowed).
    std::set<std::string> in_guide;
    std::istringstream lines(section);
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind("| `--", 0) != 0) continue;
      const std::string cell = line.substr(0, line.find('|', 1));
      for (const std::string& f : flags_in(cell, std::regex(R"(`(--[a-z0-9-]+))"))) in_guide.insert(f);
    }
    for (const std::string& f : in_help) EXPECT_TRUE(in_guide.count(f)) << command << " " << f << ": in --help, not in the guide";
    for (const std::string& f : in_guide) EXPECT_TRUE(in_help.count(f)) << command << " " << f << ": in the guide, not in --help";
  }
}

}  // namespace
