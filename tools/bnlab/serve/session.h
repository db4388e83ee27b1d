// The model session: what the page looks at. A "look" runs one drawn digit through a copy of a
// model (never the served weights themselves, so looking cannot change their running
// statistics) and reports what every layer made of it: the class probabilities, each layer's
// activation map, and inside each BatchNorm the batch's statistics against the running ones.
//
// In training mode the digit is normalized together with kBatchMates test images drawn from a
// seed the page chooses, so its prediction depends on them; in evaluation mode the same batch
// runs with the running statistics and the digit's prediction does not. Dropout is off in both
// (the copy is built with p=0): only BN's two modes differ.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "bnlab/data.h"
#include "bnlab/image.h"
#include "bnlab/network.h"
#include "serve/model_weights.h"

namespace bnlab::serve {

constexpr int64_t kBatchMates = 63;  // test images in the digit's batch: 64 samples in all

struct LookRequest {
  GrayImage drawing;   // any size; centered as `bnlab predict` does
  Mode mode = Mode::Eval;
  uint64_t mates_seed = 1;  // which test images keep the digit company
};

class Session {
 public:
  Session(const DataSource& data, int threads);

  // The model the page looks at by default (null: none yet, the page offers to train one).
  void serve(SharedWeights weights);
  SharedWeights served() const;

  // Throws Error for a blank drawing.
  nlohmann::json look(const ModelWeights& model, const LookRequest& request);

 private:
  const DataSource& data_;
  int threads_;
  mutable std::mutex served_mutex_;
  SharedWeights served_;
  std::mutex look_mutex_;  // one look at a time: they share the copy below
  std::string look_spec_;
  std::unique_ptr<Network> look_net_;
  std::vector<float> x_;
  std::vector<uint8_t> labels_;
};

// A spec text with every Dropout's p set to 0 (the network a look runs).
std::string without_dropout(const std::string& spec_text);

}  // namespace bnlab::serve
