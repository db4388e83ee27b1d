// Locating a data set, pairing its images with its labels, and normalizing batches.
#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "bnlab/data.h"
#include "bnlab/error.h"

#ifndef BNLAB_SOURCE_DIR
#define BNLAB_SOURCE_DIR "."
#endif

namespace bnlab {
namespace {

namespace fs = std::filesystem;

constexpr const char* kFashionDir = "/usr/share/datasets/fashion-mnist";
// Pixel statistics on [0, 1] of the training sets: the usual MNIST recipe's constants, and the
// same computed over Fashion-MNIST's 60,000 training images.
constexpr float kMnistMean = 0.1307f, kMnistStd = 0.3081f;
constexpr float kFashionMean = 0.2860f, kFashionStd = 0.3530f;

// "<dir>/<name>" or "<dir>/<name>.gz", whichever exists (raw first).
std::string find_file(const fs::path& dir, const std::string& name) {
  for (const std::string& candidate : {name, name + ".gz"}) {
    if (fs::exists(dir / candidate)) return (dir / candidate).string();
  }
  fail(dir.string(), name, "missing (neither " + name + " nor " + name + ".gz exists)");
}

fs::path mnist_dir() {
  std::vector<fs::path> candidates;
  if (const char* root = std::getenv("BNLAB_DATA")) candidates.push_back(fs::path(root) / "mnist");
  candidates.push_back(fs::path("data") / "mnist");
  candidates.push_back(fs::path(BNLAB_SOURCE_DIR) / "data" / "mnist");
  for (const fs::path& dir : candidates)
    if (fs::exists(dir / "train-images-idx3-ubyte")) return dir;
  fail("mnist", "data", "not found in $BNLAB_DATA/mnist, data/mnist or " +
                            (fs::path(BNLAB_SOURCE_DIR) / "data" / "mnist").string() +
                            ": run scripts/fetch-mnist");
}

Dataset load_split(const fs::path& dir, const std::string& prefix) {
  Dataset set;
  set.images_path = find_file(dir, prefix + "-images-idx3-ubyte");
  set.labels_path = find_file(dir, prefix + "-labels-idx1-ubyte");
  IdxImages images = read_idx_images(set.images_path);
  set.labels = read_idx_labels(set.labels_path);
  if (static_cast<int64_t>(set.labels.size()) != images.count) {
    fail(set.labels_path, "count",
         std::to_string(set.labels.size()) + " labels for " + std::to_string(images.count) +
             " images in " + set.images_path);
  }
  set.count = images.count;
  set.height = images.rows;
  set.width = images.cols;
  set.images = std::move(images.pixels);
  return set;
}

// Mean and standard deviation of all training pixels on [0, 1], for data sets we do not know.
void measure_pixels(DataSource& source) {
  double sum = 0, squares = 0;
  for (uint8_t p : source.train.images) {
    sum += p;
    squares += static_cast<double>(p) * p;
  }
  const double n = static_cast<double>(source.train.images.size());
  const double mean = sum / n / 255.0;
  const double var = squares / n / (255.0 * 255.0) - mean * mean;
  source.mean = static_cast<float>(mean);
  source.std = static_cast<float>(var > 0 ? std::sqrt(var) : 1.0);
}

}  // namespace

void check_labels(const Dataset& set, int64_t classes) {
  for (int64_t i = 0; i < set.count; ++i) {
    if (set.labels[i] >= classes) {
      fail(set.labels_path, "label",
           "label " + std::to_string(set.labels[i]) + " at index " + std::to_string(i) +
               " is out of range [0, " + std::to_string(classes) + ")");
    }
  }
}

DataSource load_data(const std::string& data) {
  DataSource source;
  source.name = data;
  fs::path dir;
  if (data == "mnist") {
    dir = mnist_dir();
    source.mean = kMnistMean;
    source.std = kMnistStd;
  } else if (data == "fashion-mnist") {
    dir = kFashionDir;
    if (!fs::exists(dir)) fail(data, "data", std::string(kFashionDir) + " not found: apt-get install dataset-fashion-mnist");
    source.mean = kFashionMean;
    source.std = kFashionStd;
  } else {
    dir = data;
    if (!fs::is_directory(dir)) fail(data, "data", "not a directory, nor mnist or fashion-mnist");
  }
  source.train = load_split(dir, "train");
  source.test = load_split(dir, "t10k");
  if (source.train.height != source.test.height || source.train.width != source.test.width) {
    fail(source.test.images_path, "dimensions", "test images differ in size from training images");
  }
  if (data != "mnist" && data != "fashion-mnist") measure_pixels(source);
  return source;
}

PixelStats pixel_stats(const std::string& data) {
  if (data == "mnist") return {kMnistMean, kMnistStd};
  if (data == "fashion-mnist") return {kFashionMean, kFashionStd};
  const DataSource source = load_data(data);
  return {source.mean, source.std};
}

InputNormalization input_normalization(const DataSource& source) {
  return {.scale = source.scale, .mean = source.mean, .std = source.std};
}

void gather_batch(float* out, uint8_t* labels, const Dataset& set, const DataSource& source,
                  const int64_t* indices, int64_t n) {
  const int64_t pixels = set.height * set.width;
  const InputNormalization scaled = input_normalization(source);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* in = set.images.data() + indices[i] * pixels;
    float* o = out + i * pixels;
    for (int64_t p = 0; p < pixels; ++p) o[p] = scaled(in[p]);
    labels[i] = set.labels[indices[i]];
  }
}

void limit_samples(Dataset& set, int64_t limit) {
  if (limit <= 0 || limit >= set.count) return;
  set.count = limit;
  set.images.resize(static_cast<size_t>(limit * set.height * set.width));
  set.labels.resize(static_cast<size_t>(limit));
}

}  // namespace bnlab
