// safetensors: round trip, strict loading into a network, and corrupt headers rejected
// without crashing; the atomic writer keeps the old file when a write fails half way.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "bnlab/atomic_file.h"
#include "bnlab/checkpoint.h"
#include "bnlab/error.h"
#include "bnlab/spec.h"

namespace bnlab {
namespace {

namespace fs = std::filesystem;

class SafetensorsFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("bnlab_st_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // A file with the given JSON header and `data_bytes` zero bytes of data.
  std::string raw(const std::string& name, const std::string& header, size_t data_bytes, int64_t claimed = -1) {
    std::ofstream out(path(name), std::ios::binary);
    uint64_t n = claimed >= 0 ? static_cast<uint64_t>(claimed) : header.size();
    out.write(reinterpret_cast<const char*>(&n), 8);
    out << header << std::string(data_bytes, '\0');
    return path(name);
  }

  std::string error_of(const std::string& p) {
    try {
      read_safetensors(p);
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  }

  fs::path dir_;
};

TEST_F(SafetensorsFiles, RoundTripKeepsNamesShapesDtypesAndMetadata) {
  std::vector<float> a = {1.5f, -2.0f, 3.25f, 0.0f, 5.0f, 6.0f};
  int64_t counter = 938;
  write_safetensors(path("t.safetensors"),
                    {{"a.weight", DType::F32, {2, 3}, a.data()}, {"a.num_batches_tracked", DType::I64, {}, &counter}},
                    {{"k", "v"}});
  const SafetensorsFile f = read_safetensors(path("t.safetensors"));
  EXPECT_EQ(f.metadata.at("k"), "v");
  EXPECT_EQ(std::memcmp(f.f32("a.weight", {2, 3}), a.data(), 24), 0);
  EXPECT_EQ(f.i64("a.num_batches_tracked", {})[0], 938);
  EXPECT_THROW(f.f32("a.weight", {3, 2}), Error);
  // The data section starts 8-byte aligned, as the format asks.
  uint64_t header = 0;
  std::ifstream(path("t.safetensors"), std::ios::binary).read(reinterpret_cast<char*>(&header), 8);
  EXPECT_EQ(header % 8, 0u);
}

TEST_F(SafetensorsFiles, NetworkCheckpointRoundTrip) {
  Network a = build_network(load_spec("seed"), {1, 28, 28});
  a.initialize(5);
  save_checkpoint(a, path("net.safetensors"));
  Network b = build_network(load_spec("seed"), {1, 28, 28});
  load_checkpoint(b, path("net.safetensors"));
  EXPECT_TRUE(std::equal(a.parameters().begin(), a.parameters().end(), b.parameters().begin()));
}

TEST_F(SafetensorsFiles, LoadingIntoAnotherNetworkNamesTheTensor) {
  Network seed = build_network(load_spec("seed"), {1, 28, 28});
  seed.initialize(1);
  save_checkpoint(seed, path("seed.safetensors"));
  Network nobn = build_network(load_spec("seed-nobn"), {1, 28, 28});
  try {
    load_checkpoint(nobn, path("seed.safetensors"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), path("seed.safetensors") + ": tensor 'conv1_bn.bias': unexpected: the network has no such tensor");
  }
  Network wide = build_network(parse_spec("conv1: Conv2d out_channels=16 kernel_size=3\n", "w"), {1, 28, 28});
  try {
    load_checkpoint(wide, path("seed.safetensors"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), path("seed.safetensors") + ": tensor 'conv1.weight': shape 32x1x3x3, expected 16x1x3x3");
  }
}

TEST_F(SafetensorsFiles, CorruptFilesAreRejected) {
  const std::string entry = R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  EXPECT_EQ(error_of(raw("ok", entry, 8)), "no error");
  EXPECT_EQ(error_of(raw("oversized", entry, 8, int64_t{1} << 40)),
            path("oversized") + ": header: length 1099511627776 exceeds the file's " + std::to_string(entry.size() + 8) + " remaining bytes");
  EXPECT_EQ(error_of(raw("notjson", "{\"t\": [", 0)), path("notjson") + ": header: is not a JSON object");
  EXPECT_EQ(error_of(raw("range", R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4)),
            path("range") + ": tensor 't': data_offsets [0, 8] fall outside the 4-byte data section");
  EXPECT_EQ(error_of(raw("overlap", R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12)),
            path("overlap") + ": data_offsets: tensors overlap at byte 4");
  EXPECT_EQ(error_of(raw("length", R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8)),
            path("length") + ": tensor 't': data_offsets span 8 bytes but shape 3 of F32 needs 12");
  EXPECT_EQ(error_of(raw("dtype", R"({"t":{"dtype":"BF16","shape":[4],"data_offsets":[0,8]}})", 8)),
            path("dtype") + ": tensor 't': unsupported dtype BF16 (bnlab reads F32 and I64)");
  EXPECT_EQ(error_of(raw("hugeshape", R"({"t":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", 8)),
            path("hugeshape") + ": tensor 't': shape [4294967296,4294967296] is larger than the file");
  EXPECT_EQ(error_of(raw("negative", R"({"t":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8)),
            path("negative") + ": tensor 't': shape holds a non-integer or negative size");
  EXPECT_EQ(error_of(raw("hole", R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12)),
            path("hole") + ": data_offsets: hole before byte 4");
  EXPECT_EQ(error_of(raw("tail", entry, 16)), path("tail") + ": data: 8 bytes follow the last tensor");
  std::ofstream(path("short")) << "abc";
  EXPECT_EQ(error_of(path("short")), path("short") + ": header: file too short for a safetensors header");
}

TEST_F(SafetensorsFiles, FailedAtomicWriteKeepsTheOldFile) {
  const std::string target = path("ckpt");
  write_file_atomically(target, [](const ByteSink& sink) {
    const uint8_t old[3] = {1, 2, 3};
    sink({old, 3});
  });
  EXPECT_THROW(write_file_atomically(target,
                                     [](const ByteSink& sink) {
                                       const uint8_t part[2] = {9, 9};
                                       sink({part, 2});
                                       throw Error("simulated: disk full half way");
                                     }),
               Error);
  std::ifstream in(target, std::ios::binary);
  std::string content((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(content, std::string("\x01\x02\x03"));
  // No temporary file is left behind.
  int files = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir_)) ++files;
  EXPECT_EQ(files, 1);
}

TEST_F(SafetensorsFiles, UnwritableDirectoryIsAnError) {
  EXPECT_THROW(write_file_atomically(path("no/such/dir/file"), [](const ByteSink&) {}), Error);
}

// Found by fuzz/safetensors_fuzz: an empty I64 tensor was copied with memcpy from and to null
// pointers (undefined behaviour, reported by UBSan); empty tensors of either dtype read back.
TEST_F(SafetensorsFiles, EmptyTensorsReadBack) {
  const std::string p = raw("empty", R"({"e":{"dtype":"I64","shape":[0],"data_offsets":[0,0]},)"
                                     R"("f":{"dtype":"F32","shape":[2,0],"data_offsets":[0,0]},)"
                                     R"("one":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})", 8);
  const SafetensorsFile f = read_safetensors(p);
  EXPECT_TRUE(f.i64("e", {0}).empty());
  EXPECT_EQ(f.i64("one", {1}), std::vector<int64_t>{0});
  f.f32("f", {2, 0});
  const std::string q = raw("only_empty", R"({"e":{"dtype":"I64","shape":[0],"data_offsets":[0,0]}})", 0);
  EXPECT_TRUE(read_safetensors(q).i64("e", {0}).empty());
}

}  // namespace
}  // namespace bnlab
