// The IDX reader on good files (raw and gzip) and on every malformed case we could think of;
// each bad file must give one line naming the file and the problem, and allocate nothing from
// an unchecked header.
#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "bnlab/data.h"
#include "bnlab/error.h"

namespace bnlab {
namespace {

namespace fs = std::filesystem;

std::vector<uint8_t> be32(uint32_t v) {
  return {static_cast<uint8_t>(v >> 24), static_cast<uint8_t>(v >> 16), static_cast<uint8_t>(v >> 8),
          static_cast<uint8_t>(v)};
}

std::vector<uint8_t> idx_images(uint32_t count, uint32_t rows, uint32_t cols, int64_t data_bytes = -1) {
  std::vector<uint8_t> b = be32(0x803);
  for (uint32_t d : {count, rows, cols}) {
    auto e = be32(d);
    b.insert(b.end(), e.begin(), e.end());
  }
  const int64_t n = data_bytes >= 0 ? data_bytes : int64_t{count} * rows * cols;
  for (int64_t i = 0; i < n; ++i) b.push_back(static_cast<uint8_t>(i * 7));
  return b;
}

std::vector<uint8_t> idx_labels(std::vector<uint8_t> labels) {
  std::vector<uint8_t> b = be32(0x801);
  auto e = be32(static_cast<uint32_t>(labels.size()));
  b.insert(b.end(), e.begin(), e.end());
  b.insert(b.end(), labels.begin(), labels.end());
  return b;
}

class IdxFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("bnlab_idx_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::vector<uint8_t>& bytes) {
    const std::string path = (dir_ / name).string();
    if (name.size() > 3 && name.substr(name.size() - 3) == ".gz") {
      gzFile f = gzopen(path.c_str(), "wb");
      gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
      gzclose(f);
    } else {
      std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    }
    return path;
  }

  template <typename F>
  std::string error_of(F&& f) {
    try {
      f();
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  }

  fs::path dir_;
};

TEST_F(IdxFiles, ReadsRawAndGzipAlike) {
  const auto bytes = idx_images(3, 4, 5);
  const IdxImages raw = read_idx_images(write("a", bytes));
  const IdxImages gz = read_idx_images(write("a.gz", bytes));
  EXPECT_EQ(raw.count, 3);
  EXPECT_EQ(raw.rows, 4);
  EXPECT_EQ(raw.cols, 5);
  EXPECT_EQ(raw.pixels, gz.pixels);
  EXPECT_EQ(raw.pixels[1], 7);
  EXPECT_EQ(read_idx_labels(write("l.gz", idx_labels({1, 2, 3}))), (std::vector<uint8_t>{1, 2, 3}));
}

TEST_F(IdxFiles, WrongMagic) {
  const std::string p = write("m", idx_labels({1}));
  EXPECT_EQ(error_of([&] { read_idx_images(p); }),
            p + ": magic: wrong magic number 0x00000801 (expected 0x00000803 for a 3-d ubyte file)");
}

TEST_F(IdxFiles, TruncatedHeader) {
  const std::string p = write("h", {0, 0, 8, 3, 0, 0});
  EXPECT_EQ(error_of([&] { read_idx_images(p); }), p + ": header: truncated: the file ends inside the 16-byte header");
}

TEST_F(IdxFiles, TruncatedData) {
  const std::string p = write("t", idx_images(10, 28, 28, 100));
  EXPECT_EQ(error_of([&] { read_idx_images(p); }),
            p + ": size: header promises 7840 data bytes (10x28x28) but the file has 100 (truncated)");
}

TEST_F(IdxFiles, TrailingBytes) {
  const std::string p = write("x", idx_images(1, 2, 2, 9));
  EXPECT_EQ(error_of([&] { read_idx_images(p); }),
            p + ": size: header promises 4 data bytes (1x2x2) but the file has 9 (trailing bytes)");
}

TEST_F(IdxFiles, HugeDimensionsAreRejectedBeforeAllocating) {
  const std::string p = write("huge", idx_images(0xffffffff, 0xffffffff, 0xffffffff, 0));
  EXPECT_EQ(error_of([&] { read_idx_images(p); }),
            p + ": dimensions: sizes 4294967295x4294967295x4294967295 overflow");
}

TEST_F(IdxFiles, HeaderLargerThanFileIsRejectedBeforeAllocating) {
  // 2^31 images of 1x1 fit in int64 but not in a 20-byte file.
  const std::string p = write("big", idx_images(0x80000000u, 1, 1, 4));
  EXPECT_EQ(error_of([&] { read_idx_images(p); }),
            p + ": size: header promises 2147483648 data bytes (2147483648x1x1) but the file has 4 (truncated)");
}

TEST_F(IdxFiles, TruncatedMagic) {
  const std::string p = write("tiny", {0, 0});
  EXPECT_EQ(error_of([&] { read_idx_images(p); }), p + ": magic: truncated: the file ends inside the magic number");
}

TEST_F(IdxFiles, ZeroItems) {
  const std::string p = write("z", idx_images(0, 28, 28));
  EXPECT_EQ(error_of([&] { read_idx_images(p); }), p + ": count: the file holds no items");
}

TEST_F(IdxFiles, GzipWithLyingHeader) {
  const std::string p = write("lie.gz", idx_images(1000, 28, 28, 50));
  EXPECT_EQ(error_of([&] { read_idx_images(p); }),
            p + ": size: header promises 784000 data bytes (1000x28x28) but the gzip stream holds 50 (modulo 2^32)");
}

TEST_F(IdxFiles, GzipCutShort) {
  const std::string good = write("cut.gz", idx_images(50, 28, 28));
  const auto size = fs::file_size(good);
  fs::resize_file(good, size / 2);
  const std::string message = error_of([&] { read_idx_images(good); });
  EXPECT_EQ(message.rfind(good + ": ", 0), 0u) << message;
  EXPECT_NE(message, "no error");
}

TEST_F(IdxFiles, NotGzipAtAll) {
  const std::string p = write("plain.gz", {});
  std::ofstream(p) << "this is not gzip data at all, just text";
  const std::string message = error_of([&] { read_idx_images(p); });
  EXPECT_EQ(message.rfind(p + ": ", 0), 0u) << message;
}

TEST_F(IdxFiles, MissingFile) {
  const std::string p = (dir_ / "nope").string();
  EXPECT_EQ(error_of([&] { read_idx_images(p); }).rfind(p + ": cannot open", 0), 0u);
}

TEST_F(IdxFiles, DataSetPairsImagesWithLabels) {
  write("train-images-idx3-ubyte", idx_images(4, 3, 3));
  write("train-labels-idx1-ubyte.gz", idx_labels({0, 1, 2, 3}));
  write("t10k-images-idx3-ubyte.gz", idx_images(2, 3, 3));
  write("t10k-labels-idx1-ubyte", idx_labels({4, 5}));
  const DataSource d = load_data(dir_.string());
  EXPECT_EQ(d.train.count, 4);
  EXPECT_EQ(d.test.labels, (std::vector<uint8_t>{4, 5}));
  EXPECT_GT(d.std, 0.0f);  // measured from the training pixels for unknown data sets
}

TEST_F(IdxFiles, LabelCountMustMatchImageCount) {
  write("train-images-idx3-ubyte", idx_images(4, 3, 3));
  const std::string labels = write("train-labels-idx1-ubyte", idx_labels({0, 1, 2}));
  write("t10k-images-idx3-ubyte", idx_images(2, 3, 3));
  write("t10k-labels-idx1-ubyte", idx_labels({4, 5}));
  EXPECT_EQ(error_of([&] { load_data(dir_.string()); }),
            labels + ": count: 3 labels for 4 images in " + (dir_ / "train-images-idx3-ubyte").string());
}

TEST_F(IdxFiles, LabelsOutOfRange) {
  write("train-images-idx3-ubyte", idx_images(3, 3, 3));
  const std::string labels = write("train-labels-idx1-ubyte", idx_labels({0, 12, 2}));
  write("t10k-images-idx3-ubyte", idx_images(1, 3, 3));
  write("t10k-labels-idx1-ubyte", idx_labels({4}));
  const DataSource d = load_data(dir_.string());
  EXPECT_EQ(error_of([&] { check_labels(d.train, 10); }),
            labels + ": label: label 12 at index 1 is out of range [0, 10)");
}

TEST_F(IdxFiles, MissingSplitFile) {
  write("train-images-idx3-ubyte", idx_images(3, 3, 3));
  EXPECT_EQ(error_of([&] { load_data(dir_.string()); }),
            dir_.string() + ": train-labels-idx1-ubyte: missing (neither train-labels-idx1-ubyte nor "
                            "train-labels-idx1-ubyte.gz exists)");
}

TEST_F(IdxFiles, GatherNormalizesLikeTorchvision) {
  write("train-images-idx3-ubyte", idx_images(2, 1, 2));
  write("train-labels-idx1-ubyte", idx_labels({3, 4}));
  write("t10k-images-idx3-ubyte", idx_images(1, 1, 2));
  write("t10k-labels-idx1-ubyte", idx_labels({0}));
  DataSource d = load_data(dir_.string());
  d.mean = 0.1307f;
  d.std = 0.3081f;
  const int64_t idx[1] = {1};
  float out[2];
  uint8_t label;
  gather_batch(out, &label, d.train, d, idx, 1);
  EXPECT_EQ(label, 4);
  EXPECT_FLOAT_EQ(out[0], (d.train.images[2] / 255.0f - 0.1307f) / 0.3081f);
}

}  // namespace
}  // namespace bnlab
