// Data sets in the IDX format of MNIST (http://yann.lecun.com/exdb/mnist/), raw or gzip.
// Images stay uint8 in memory; batches are normalized as they are gathered.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bnlab/input_scale.h"

namespace bnlab {

struct IdxImages {
  int64_t count = 0, rows = 0, cols = 0;
  std::vector<uint8_t> pixels;  // (count, rows, cols)
};

// Both check the magic number, the dimensions against the file's real size before allocating,
// and that nothing follows the data. Errors name the file: "<path>: <field>: <problem>".
IdxImages read_idx_images(const std::string& path);
std::vector<uint8_t> read_idx_labels(const std::string& path);

struct Dataset {
  std::string images_path, labels_path;
  int64_t count = 0, height = 0, width = 0;
  std::vector<uint8_t> images;  // (count, height, width)
  std::vector<uint8_t> labels;  // (count)
};

struct DataSource {
  std::string name;  // "mnist", "fashion-mnist" or the directory
  Dataset train, test;
  float mean = 0, std = 1;  // of pixels scaled to [0, 1]
  InputScale scale = InputScale::Standardize;  // what gather_batch feeds the network
};

// The data set's pixel scaling: its scale, with its mean and deviation for standardize.
InputNormalization input_normalization(const DataSource& source);

// `data` is "mnist" (data/mnist/ of this checkout, or $BNLAB_DATA/mnist), "fashion-mnist"
// (Debian's dataset-fashion-mnist) or a directory holding train-images-idx3-ubyte,
// train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (each maybe .gz).
DataSource load_data(const std::string& data);

// The pixel normalization a model trained on `data` expects, (pixel/255 - mean) / std: the known
// sets' constants (read nothing), a directory's computed from its training images (load_data).
struct PixelStats {
  float mean = 0, std = 1;
};
PixelStats pixel_stats(const std::string& data);

// Every label must lie in [0, classes): the network's output size. Error names the label file.
void check_labels(const Dataset& set, int64_t classes);

// out (n, 1, H, W) = the samples `indices` scaled by input_normalization(source); labels (n).
void gather_batch(float* out, uint8_t* labels, const Dataset& set, const DataSource& source,
                  const int64_t* indices, int64_t n);

// Keeps the first `limit` samples (limit <= 0 keeps all).
void limit_samples(Dataset& set, int64_t limit);

}  // namespace bnlab
