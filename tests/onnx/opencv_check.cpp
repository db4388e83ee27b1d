// Runs an ONNX model in OpenCV's DNN module (Debian's libopencv-dnn-dev, cv::dnn::readNetFromONNX)
// on MNIST's 10,000 test images (or the first N the reference has) and compares its log-probabilities with a reference:
//   --expect OUT.safetensors   what `bnlab eval --outputs` wrote for the same network, or
//   --against OTHER.onnx       another model run here the same way (PyTorch's own export).
// Passes (exit 0) when every prediction agrees and every |difference| <= --tolerance; prints the
// largest difference. --raw-pixels feeds pixels on [0, 1] (a model exported --with-preprocessing).
// Usage: onnx_opencv_check MODEL.onnx (--expect F | --against F) [--raw-pixels] [--tolerance T]
#include <opencv2/core.hpp>
#include <opencv2/dnn.hpp>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "bnlab/checkpoint.h"
#include "bnlab/data.h"
#include "bnlab/error.h"

namespace {

constexpr int64_t kBatch = 500;  // several batches: the batch dimension must be dynamic

// The model's outputs (count, classes) for the test images.
std::vector<float> run_opencv(const std::string& model, const bnlab::DataSource& data, bool raw, int64_t& classes) {
  cv::dnn::Net net = cv::dnn::readNetFromONNX(model);
  const bnlab::Dataset& test = data.test;
  const int64_t pixels = test.height * test.width;
  std::vector<float> out;
  std::vector<int64_t> indices(kBatch);
  std::vector<uint8_t> labels(kBatch);
  for (int64_t begin = 0; begin < test.count; begin += kBatch) {
    const int n = static_cast<int>(std::min(kBatch, test.count - begin));
    const int dims[] = {n, 1, static_cast<int>(test.height), static_cast<int>(test.width)};
    cv::Mat blob(4, dims, CV_32F);
    float* x = blob.ptr<float>();
    if (raw) {
      for (int64_t i = 0; i < n * pixels; ++i) x[i] = static_cast<float>(test.images[begin * pixels + i]) / 255.0f;
    } else {
      for (int i = 0; i < n; ++i) indices[i] = begin + i;
      bnlab::gather_batch(x, labels.data(), test, data, indices.data(), n);  // bnlab's own normalization
    }
    net.setInput(blob, "input");
    cv::Mat y = net.forward();
    classes = y.total() / n;
    out.insert(out.end(), y.ptr<float>(), y.ptr<float>() + y.total());
  }
  return out;
}

int64_t argmax(const float* v, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i) if (v[i] > v[best]) best = i;
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model, expect, against;
  bool raw = false;
  double tolerance = 1e-4;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--expect" && i + 1 < argc) expect = argv[++i];
    else if (a == "--against" && i + 1 < argc) against = argv[++i];
    else if (a == "--tolerance" && i + 1 < argc) tolerance = std::stod(argv[++i]);
    else if (a == "--raw-pixels") raw = true;
    else if (model.empty() && a[0] != '-') model = a;
    else { std::fprintf(stderr, "onnx_opencv_check: unknown argument %s\n", a.c_str()); return 2; }
  }
  if (model.empty() || expect.empty() == against.empty()) {
    std::fprintf(stderr, "usage: onnx_opencv_check MODEL.onnx (--expect OUT.safetensors | --against OTHER.onnx) [--raw-pixels]\n");
    return 2;
  }
  try {
    cv::setNumThreads(2);
    bnlab::DataSource data = bnlab::load_data("mnist");
    bnlab::SafetensorsFile file;
    if (!expect.empty()) {
      // The reference covers the first N test images (all 10,000 but under the sanitizers).
      file = bnlab::read_safetensors(expect);
      const auto output = file.entries.find("output");
      if (output == file.entries.end() || output->second.shape.size() != 2 || output->second.shape[0] < 1 ||
          output->second.shape[0] > data.test.count) {
        std::fprintf(stderr, "FAIL: %s has no output tensor of (N <= %lld, classes)\n", expect.c_str(),
                     static_cast<long long>(data.test.count));
        return 1;
      }
      bnlab::limit_samples(data.test, output->second.shape[0]);
    }
    int64_t classes = 0, reference_classes = 0;
    const std::vector<float> ours = run_opencv(model, data, raw, classes);
    std::vector<float> reference;
    if (!against.empty()) {
      reference = run_opencv(against, data, raw, reference_classes);
    } else {
      const float* v = file.f32("output", {data.test.count, classes});
      reference.assign(v, v + data.test.count * classes);
      reference_classes = classes;
    }
    if (reference.size() != ours.size() || classes != reference_classes || ours.empty()) {
      std::fprintf(stderr, "FAIL: %zu outputs, the reference has %zu\n", ours.size(), reference.size());
      return 1;
    }
    double max_diff = 0;
    int64_t disagree = 0, beyond = 0;  // beyond: differences over the tolerance, or NaN
    for (int64_t s = 0; s < data.test.count; ++s) {
      const float* a = ours.data() + s * classes;
      const float* b = reference.data() + s * classes;
      for (int64_t c = 0; c < classes; ++c) {
        const double d = std::abs(double(a[c]) - b[c]);
        max_diff = std::max(max_diff, d);
        if (!(d <= tolerance)) ++beyond;
      }
      if (argmax(a, classes) != argmax(b, classes)) ++disagree;
    }
    std::printf("%s in OpenCV %s: %lld images, %lld predictions differ, max |log p difference| %.3g (tolerance %.g)\n",
                model.c_str(), CV_VERSION, static_cast<long long>(data.test.count), static_cast<long long>(disagree),
                max_diff, tolerance);
    return disagree == 0 && beyond == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "FAIL: %s\n", e.what());
    return 1;
  }
}
