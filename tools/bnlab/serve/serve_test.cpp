// The server's pieces without HTTP: the Host/Origin rule, the spec rewrites, the request fields,
// and the session's promises (a look preprocesses as `bnlab predict`; eval mode ignores the
// batch-mates, training mode does not; looking never changes the model).
#include <gtest/gtest.h>

#include <cmath>

#include "bnlab/spec.h"
#include "serve/host_guard.h"
#include "serve/json_fields.h"
#include "serve/session.h"
#include "serve/training_job.h"

namespace bnlab::serve {
namespace {

TEST(HostGuard, LoopbackAnswersOnlyItsOwnNames) {
  const HostGuard g("127.0.0.1", 8080);
  EXPECT_TRUE(g.allows_host("127.0.0.1:8080"));
  EXPECT_TRUE(g.allows_host("localhost:8080"));
  EXPECT_FALSE(g.allows_host("127.0.0.1:8081"));
  EXPECT_FALSE(g.allows_host("evil.example:8080"));
  EXPECT_FALSE(g.allows_host("127.0.0.1"));
  EXPECT_FALSE(g.allows_host(""));
  EXPECT_TRUE(g.allows_origin(""));
  EXPECT_TRUE(g.allows_origin("http://localhost:8080"));
  EXPECT_FALSE(g.allows_origin("http://evil.example:8080"));
  EXPECT_FALSE(g.allows_origin("https://127.0.0.1:8080"));
  EXPECT_FALSE(g.allows_origin("null"));
}

TEST(HostGuard, WildcardTakesIpLiteralsButNoNames) {
  const HostGuard g("0.0.0.0", 9000);
  EXPECT_TRUE(g.allows_host("192.168.1.7:9000"));
  EXPECT_FALSE(g.allows_host("rebound.example:9000"));
  const HostGuard v6("::1", 9000);
  EXPECT_TRUE(v6.allows_host("[::1]:9000"));
  EXPECT_FALSE(v6.allows_host("::1:9000"));
}

TEST(SpecRewrites, DropoutOffAndBatchNormRemoved) {
  const std::string seed = preset_text("seed");
  const Network plain = build_network(parse_spec(without_dropout(seed), "t"), {1, 28, 28});
  const Network original = build_network(parse_spec(seed, "t"), {1, 28, 28});
  ASSERT_EQ(plain.layer_count(), original.layer_count());
  EXPECT_EQ(plain.parameters().size(), original.parameters().size());
  EXPECT_NE(spec_text(plain).find("Dropout p=0"), std::string::npos);
  const Network nobn = build_network(parse_spec(without_batchnorm(seed), "t"), {1, 28, 28});
  EXPECT_EQ(nobn.layer_count(), original.layer_count() - 3);
  for (size_t i = 0; i < nobn.layer_count(); ++i) EXPECT_NE(nobn.layer(i).kind(), LayerKind::BatchNorm);
}

TEST(JsonFields, NameTheFieldAndTheProblem) {
  const nlohmann::json j = parse_body(R"({"lr": "fast", "steps": 5, "bn": 1})");
  EXPECT_EQ(integer_field(j, "steps", 0, 1, 10), 5);
  try {
    real_field(j, "lr", 1, 0, 10);
    FAIL();
  } catch (const HttpError& e) {
    EXPECT_EQ(e.status, 400);
    EXPECT_EQ(e.message, "request body: lr: must be a number");
  }
  EXPECT_THROW(integer_field(j, "steps", 0, 6, 10), HttpError);
  EXPECT_THROW(bool_field(j, "bn", true), HttpError);
  EXPECT_THROW(parse_body("{\"a\": "), HttpError);
  EXPECT_THROW(parse_body("[1, 2]"), HttpError);
}

class SessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    data_.test.count = 200;
    data_.test.height = data_.test.width = 28;
    data_.test.images.resize(200 * 28 * 28);
    data_.test.labels.resize(200);
    for (size_t i = 0; i < data_.test.images.size(); ++i) data_.test.images[i] = static_cast<uint8_t>((i * 2654435761u) >> 24);
    for (size_t i = 0; i < 200; ++i) data_.test.labels[i] = static_cast<uint8_t>(i % 10);
    data_.mean = 0.1307f;
    data_.std = 0.3081f;
    Network net = build_network(load_spec("seed"), {1, 28, 28});
    net.initialize(3);
    // Running statistics away from their defaults, as a trained model's.
    for (size_t i = 0; i < net.buffers().size(); ++i) net.buffers()[i] = 0.5f + 0.01f * static_cast<float>(i % 17);
    model_ = capture_weights(net, spec_text(load_spec("seed")), "test");
    drawing_.width = drawing_.height = 56;
    drawing_.pixels.assign(56 * 56, 0);
    for (int y = 8; y < 48; ++y)
      for (int x = 24; x < 31; ++x) drawing_.pixels[static_cast<size_t>(y * 56 + x)] = 255;  // a "1"
  }
  DataSource data_;
  SharedWeights model_;
  GrayImage drawing_;
};

TEST_F(SessionTest, EvalLookIsWhatPredictComputes) {
  Session session(data_, 1);
  const nlohmann::json r = session.look(*model_, {.drawing = drawing_, .mode = Mode::Eval, .mates_seed = 1});
  Network net = build_network(load_spec("seed"), {1, 28, 28});
  restore_weights(net, *model_);
  net.reserve_inference(1);
  std::vector<float> x(28 * 28);
  normalize_digit(x.data(), center_digit(drawing_).image);
  const float* y = net.forward(x.data(), 1, {.mode = Mode::Eval});
  for (int k = 0; k < 10; ++k) EXPECT_NEAR(r["probabilities"][k].get<double>(), std::exp(y[k]), 1e-5) << k;
}

TEST_F(SessionTest, OnlyTrainingModeFeelsTheBatchMatesAndLookingChangesNothing) {
  Session session(data_, 1);
  const ModelWeights before = *model_;
  auto probs = [&](Mode mode, uint64_t mates) {
    return session.look(*model_, {.drawing = drawing_, .mode = mode, .mates_seed = mates})["probabilities"].get<std::vector<double>>();
  };
  const std::vector<double> eval1 = probs(Mode::Eval, 1);
  EXPECT_EQ(probs(Mode::Eval, 2), eval1);  // bit for bit
  const std::vector<double> train1 = probs(Mode::Train, 1), train2 = probs(Mode::Train, 2);
  EXPECT_NE(train1, train2);
  EXPECT_NE(train1, eval1);
  EXPECT_EQ(probs(Mode::Train, 1), train1);  // the same batch again: the same numbers
  EXPECT_EQ(probs(Mode::Eval, 1), eval1);    // training-mode looks left the running statistics alone
  EXPECT_EQ(model_->buffers, before.buffers);
  EXPECT_EQ(model_->counters, before.counters);
}

TEST_F(SessionTest, BatchStatisticsAreTheBatchInputsMoments) {
  Session session(data_, 1);
  const nlohmann::json r = session.look(*model_, {.drawing = drawing_, .mode = Mode::Train, .mates_seed = 4});
  ASSERT_EQ(r["bn"].size(), 3u);
  const nlohmann::json& fc1_bn = r["bn"][2];
  EXPECT_EQ(fc1_bn["name"], "fc1_bn");
  EXPECT_EQ(fc1_bn["batch_mean"].size(), 128u);
  // In training mode BN's output over the batch has, per channel, mean beta and variance
  // gamma^2 * var / (var + eps): the histogram after it spans beta +- a few gamma.
  EXPECT_EQ(fc1_bn["hist_before"]["counts"].size(), 40u);
  int64_t total = 0;
  for (int64_t c : fc1_bn["hist_after"]["counts"]) total += c;
  EXPECT_EQ(total, 64 * 128);
  EXPECT_EQ(r["batch"]["size"], 64);
}

}  // namespace
}  // namespace bnlab::serve
