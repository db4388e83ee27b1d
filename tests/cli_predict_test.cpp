// bnlab summary and bnlab predict end to end. predict classifies digits this test draws itself
// (0, 1 and 7: shapes a model trained on 12,000 MNIST images tells apart reliably) in many
// variants: dark on light and light on dark, square and non-square canvases, off-center, PNG
// (gray, RGB, RGBA, 16-bit) and PGM (P2, P5). Bad images exit 2 with one line.
#include <gtest/gtest.h>
#include <png.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numbers>
#include <sstream>

namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

struct CommandResult {
  int status = -1;
  std::string out;  // stdout and stderr together
};

CommandResult bnlab(const std::string& args, bool with_stderr = true) {
  CommandResult r;
  const std::string command = std::string(BNLAB_BINARY) + " " + args + (with_stderr ? " 2>&1" : " 2>/dev/null");
  FILE* pipe = popen(command.c_str(), "r");
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) r.out.append(buf.data(), n);
  const int status = pclose(pipe);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// ---- drawing ----

// Ink coverage in [0, 1] on a w x h canvas.
struct Canvas {
  int w, h;
  std::vector<double> ink;
  Canvas(int w_, int h_) : w(w_), h(h_), ink(static_cast<size_t>(w_ * h_), 0.0) {}
};

using Point = std::pair<double, double>;  // x, y in the digit's box: 0..1, y downwards

double segment_distance(double px, double py, Point a, Point b) {
  const double dx = b.first - a.first, dy = b.second - a.second;
  const double len2 = dx * dx + dy * dy;
  const double t = len2 > 0 ? std::clamp(((px - a.first) * dx + (py - a.second) * dy) / len2, 0.0, 1.0) : 0.0;
  return std::hypot(px - (a.first + t * dx), py - (a.second + t * dy));
}

// Strokes the polyline with a round brush of `radius` pixels, anti-aliased by distance.
// The digit's box (aspect 0.6) is `box_h` pixels tall with its top-left corner at (left, top).
void stroke(Canvas& c, const std::vector<Point>& line, double left, double top, double box_h, double radius) {
  const double box_w = 0.6 * box_h;
  std::vector<Point> px;
  for (const Point& p : line) px.push_back({left + p.first * box_w, top + p.second * box_h});
  for (int y = 0; y < c.h; ++y) {
    for (int x = 0; x < c.w; ++x) {
      double d = 1e9;
      for (size_t i = 0; i + 1 < px.size(); ++i) d = std::min(d, segment_distance(x + 0.5, y + 0.5, px[i], px[i + 1]));
      double& v = c.ink[static_cast<size_t>(y * c.w + x)];
      v = std::max(v, std::clamp(radius + 0.5 - d, 0.0, 1.0));
    }
  }
}

std::vector<Point> digit_path(int digit) {
  if (digit == 0) {
    std::vector<Point> ring;
    for (int i = 0; i <= 32; ++i) {
      const double t = 2 * std::numbers::pi * i / 32;
      ring.push_back({0.5 + 0.45 * std::cos(t), 0.5 + 0.47 * std::sin(t)});
    }
    return ring;
  }
  switch (digit) {
    case 1: return {{0.55, 0.0}, {0.45, 1.0}};
    case 2: return {{0.1, 0.25}, {0.3, 0.05}, {0.7, 0.05}, {0.9, 0.25}, {0.85, 0.45}, {0.1, 0.95}, {0.95, 0.95}};
    case 3: return {{0.1, 0.1}, {0.5, 0.0}, {0.85, 0.15}, {0.8, 0.4}, {0.4, 0.5}, {0.85, 0.6}, {0.9, 0.85}, {0.5, 1.0}, {0.1, 0.9}};
    case 4: return {{0.7, 1.0}, {0.7, 0.0}, {0.05, 0.65}, {0.95, 0.65}};
    case 6: return {{0.8, 0.05}, {0.4, 0.2}, {0.12, 0.6}, {0.2, 0.9}, {0.5, 1.0}, {0.85, 0.85}, {0.8, 0.6}, {0.5, 0.5}, {0.15, 0.65}};
    default: return {{0.05, 0.04}, {0.95, 0.04}, {0.45, 1.0}};  // 7
  }
}

// Must all be right: distinctive shapes. The others (drawn less like MNIST's writers) mostly.
bool required(int digit) { return digit == 0 || digit == 1 || digit == 7; }

// A digit on a w x h canvas, its box `fill` of the canvas height (or as wide as fits), centered
// at (cx, cy) in fractions of the canvas.
Canvas draw(int digit, int w, int h, double fill = 0.7, double cx = 0.5, double cy = 0.5) {
  Canvas c(w, h);
  const double box_h = std::min(fill * h, fill * w / 0.6);
  stroke(c, digit_path(digit), cx * w - 0.3 * box_h, cy * h - 0.5 * box_h, box_h, 0.075 * box_h);
  return c;
}

// Gray levels: ink 0..1 between background and foreground.
Bytes gray(const Canvas& c, int background, int foreground, int maxval = 255) {
  Bytes out;
  for (double v : c.ink) {
    const double level = (background + (foreground - background) * v) * maxval / 255.0;
    const int q = static_cast<int>(std::lround(level));
    if (maxval > 255) out.push_back(static_cast<uint8_t>(q >> 8));
    out.push_back(static_cast<uint8_t>(q & 0xff));
  }
  return out;
}

// ---- writing files ----

void append_bytes(png_structp png, png_bytep data, size_t n) {
  static_cast<std::ofstream*>(png_get_io_ptr(png))->write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(n));
}
void flush_nothing(png_structp) {}

void write_png(const std::string& path, int w, int h, int color_type, int bit_depth, const Bytes& raw) {
  std::ofstream out(path, std::ios::binary);
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  std::vector<png_bytep> rows(static_cast<size_t>(h));
  const size_t stride = raw.size() / static_cast<size_t>(h);
  for (int y = 0; y < h; ++y) rows[static_cast<size_t>(y)] = const_cast<png_bytep>(raw.data()) + static_cast<size_t>(y) * stride;
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    ADD_FAILURE() << "libpng could not write " << path;
    return;
  }
  png_set_write_fn(png, &out, append_bytes, flush_nothing);
  png_set_IHDR(png, info, static_cast<png_uint_32>(w), static_cast<png_uint_32>(h), bit_depth, color_type,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  png_write_image(png, rows.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
}

// Gray becomes (g, g, g), plus opaque alpha for RGBA.
Bytes to_color(const Bytes& g, bool alpha) {
  Bytes out;
  for (uint8_t v : g) {
    out.insert(out.end(), {v, v, v});
    if (alpha) out.push_back(255);
  }
  return out;
}

void write_pgm(const std::string& path, const Canvas& c, int background, int foreground, bool plain) {
  std::ofstream out(path, std::ios::binary);
  const Bytes pixels = gray(c, background, foreground);
  out << (plain ? "P2" : "P5") << "\n# drawn by cli_predict_test\n" << c.w << " " << c.h << "\n255\n";
  if (plain) {
    for (size_t i = 0; i < pixels.size(); ++i) out << int{pixels[i]} << ((i + 1) % static_cast<size_t>(c.w) ? " " : "\n");
  } else {
    out.write(reinterpret_cast<const char*>(pixels.data()), static_cast<std::streamsize>(pixels.size()));
  }
}

// ---- the fixture: one model for every test ----

// CTest runs each TEST in its own process, so SetUpTestSuite runs once per test: the model is
// kept beside the test binary and trained again only when the bnlab binary is newer. (bnlab
// saves atomically, so tests that train at the same time do no harm.)
bool model_is_fresh(const fs::path& model) {
  std::error_code ec;
  const auto trained = fs::last_write_time(model, ec);
  return !ec && trained > fs::last_write_time(BNLAB_BINARY, ec) && !ec;
}

class Predict : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() / ("bnlab_predict_" + std::to_string(::getpid())));
    fs::create_directories(*dir_);
    model_ = new std::string(BNLAB_PREDICT_MODEL);
    train_log_ = new std::string("model up to date: " + *model_);
    trained_ = model_is_fresh(*model_);
    if (!trained_) {
      const CommandResult r = bnlab("train --limit-train 12000 --limit-test 1000 --threads 2 --save " + *model_);
      *train_log_ = r.out;
      trained_ = r.status == 0;
    }
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
    delete model_;
    delete train_log_;
  }
  void SetUp() override { ASSERT_TRUE(trained_) << *train_log_; }
  static std::string path(const std::string& name) { return (*dir_ / name).string(); }

  static fs::path* dir_;
  static std::string* model_;
  static std::string* train_log_;
  static bool trained_;
};

fs::path* Predict::dir_ = nullptr;
std::string* Predict::model_ = nullptr;
std::string* Predict::train_log_ = nullptr;
bool Predict::trained_ = false;

struct Drawn {
  std::string file;
  int digit;
};

TEST_F(Predict, ClassifiesDrawnDigitsInEveryVariant) {
  std::vector<Drawn> files;
  for (int digit : {0, 1, 7, 2, 3, 4, 6}) {
    const std::string d = std::to_string(digit);
    // MNIST-like: light on dark, 28x28, raw PGM.
    write_pgm(path(d + "_28.pgm"), draw(digit, 28, 28), 0, 255, false);
    // Dark on light, wide canvas, off-center, 8-bit gray PNG.
    Canvas wide = draw(digit, 60, 40, 0.75, 0.3, 0.5);
    write_png(path(d + "_60x40.png"), 60, 40, PNG_COLOR_TYPE_GRAY, 8, gray(wide, 240, 20));
    // Light on dark, tall canvas, RGB PNG.
    Canvas tall = draw(digit, 33, 90, 0.8, 0.5, 0.6);
    write_png(path(d + "_33x90.png"), 33, 90, PNG_COLOR_TYPE_RGB, 8, to_color(gray(tall, 15, 230), false));
    // A large photo-like image: gray paper, pencil, small digit off-center, RGBA PNG.
    Canvas big = draw(digit, 200, 160, 0.4, 0.6, 0.4);
    write_png(path(d + "_200x160.png"), 200, 160, PNG_COLOR_TYPE_RGBA, 8, to_color(gray(big, 210, 60), true));
    // 16-bit gray PNG, dark on light.
    Canvas deep = draw(digit, 120, 120);
    write_png(path(d + "_16bit.png"), 120, 120, PNG_COLOR_TYPE_GRAY, 16, gray(deep, 65535 / 257, 0, 65535));
    // Plain PGM, very wide canvas: the digit is small.
    write_pgm(path(d + "_90x33.pgm"), draw(digit, 90, 33, 0.8, 0.7, 0.5), 255, 0, true);
    for (const char* suffix : {"_28.pgm", "_60x40.png", "_33x90.png", "_200x160.png", "_16bit.png", "_90x33.pgm"}) {
      files.push_back({path(d + suffix), digit});
    }
  }
  std::string args = "predict --threads 2 --weights " + *model_;
  for (const Drawn& f : files) args += " " + f.file;

  const CommandResult text = bnlab(args);
  ASSERT_EQ(text.status, 0) << text.out;
  std::istringstream lines(text.out);
  std::string line;
  size_t i = 0, others = 0, others_right = 0;
  while (std::getline(lines, line)) {
    ASSERT_LT(i, files.size()) << text.out;
    const int digit = files[i].digit;
    const std::string head = files[i].file + ": " + std::to_string(digit) + "  [" + std::to_string(digit) + " ";
    const bool right = line.rfind(head, 0) == 0;
    if (required(digit)) {
      EXPECT_TRUE(right) << line;
    } else {
      others += 1, others_right += right;
    }
    EXPECT_NE(line.find(" ["), std::string::npos) << line;
    ++i;
  }
  EXPECT_EQ(i, files.size());
  EXPECT_GE(others_right * 4, others * 3) << others_right << " of " << others << "\n" << text.out;

  // The same as one JSON document, top 10: probabilities of every class, summing to 1.
  const CommandResult json = bnlab(args + " --json --top 10", false);
  ASSERT_EQ(json.status, 0);
  const nlohmann::json doc = nlohmann::json::parse(json.out);
  ASSERT_EQ(doc["predictions"].size(), files.size());
  for (size_t k = 0; k < files.size(); ++k) {
    const nlohmann::json& p = doc["predictions"][k];
    EXPECT_EQ(p["file"], files[k].file);
    if (required(files[k].digit)) {
      EXPECT_EQ(p["class"], files[k].digit) << p.dump();
    }
    ASSERT_EQ(p["top"].size(), 10u);
    double sum = 0, previous = 1;
    for (const nlohmann::json& t : p["top"]) {
      const double prob = t["probability"];
      EXPECT_LE(prob, previous);
      previous = prob;
      sum += prob;
    }
    EXPECT_NEAR(sum, 1.0, 1e-6);
    EXPECT_EQ(p["probability"], p["top"][0]["probability"]);
  }
  // Inversion was detected from the background, whatever the file type.
  EXPECT_EQ(doc["predictions"][0]["inverted"], false);  // 0_28.pgm: light on dark
  EXPECT_EQ(doc["predictions"][1]["inverted"], true);   // 0_60x40.png: dark on light
}

TEST_F(Predict, ShowDrawsTheInput) {
  write_pgm(path("one.pgm"), draw(1, 40, 40), 255, 0, false);
  const CommandResult r = bnlab("predict --show --top 1 --weights " + *model_ + " " + path("one.pgm"));
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(r.out.rfind(path("one.pgm") + ": 1  [1 ", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("@@"), std::string::npos) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1 + 28);
}

TEST_F(Predict, BadImagesExitTwoWithOneLine) {
  write_png(path("good.png"), 20, 20, PNG_COLOR_TYPE_GRAY, 8, gray(draw(7, 20, 20), 0, 255));
  std::ifstream in(path("good.png"), std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), {});
  std::ofstream(path("truncated.png"), std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  std::ofstream(path("notes.png")) << "this is not an image\n";
  std::ofstream(path("empty.pgm"), std::ios::binary) << "P5\n0 0\n255\n";
  std::ofstream(path("blank.pgm"), std::ios::binary) << "P5\n2 2\n255\n" << std::string(4, '\xff');

  const std::string w = "predict --weights " + *model_ + " " + path("good.png") + " ";
  const std::pair<std::string, std::string> cases[] = {
      {"truncated.png", "truncated PNG (the file ends after " + std::to_string(bytes.size() / 2) + " bytes)"},
      {"notes.png", "not a PNG or PGM image"},
      {"empty.pgm", "zero size (0x0)"},
      {"blank.pgm", "no ink found (the image is blank)"},
      {"missing.png", "cannot open (No such file or directory)"},
  };
  for (const auto& [file, problem] : cases) {
    const CommandResult r = bnlab(w + path(file));
    EXPECT_EQ(r.status, 2) << file;
    EXPECT_EQ(r.out, "bnlab: " + path(file) + ": image: " + problem + "\n");
  }
  EXPECT_EQ(bnlab("predict --weights " + *model_).status, 2);  // no image
  EXPECT_EQ(bnlab("predict " + path("good.png")).status, 2);   // no weights
  EXPECT_EQ(bnlab(w + "--top 0").status, 2);
}

// ---- summary ----

TEST(Summary, SeedNetworkTable) {
  const CommandResult r = bnlab("summary --model seed");
  ASSERT_EQ(r.status, 0) << r.out;
  // conv1 320, conv1_bn 64, conv2 18,496, conv2_bn 128, fc1 1,179,776, fc1_bn 256, fc2 1,290
  EXPECT_NE(r.out.find("Trainable params: 1,200,330\n"), std::string::npos) << r.out;
  const auto row = [&](const std::string& name) {
    const size_t at = r.out.find("\n" + name + " ");
    return at == std::string::npos ? std::string() : r.out.substr(at + 1, r.out.find('\n', at + 1) - at - 1);
  };
  const std::pair<std::string, std::vector<std::string>> rows[] = {
      {"conv1", {"Conv2d", "1, 32, kernel_size=3, stride=1", "32x26x26", " 320 ", "194,688"}},
      {"conv1_bn", {"BatchNorm2d", "32x26x26", " 64 "}},
      {"conv2", {"Conv2d", "64x24x24", "18,496", "10,616,832"}},
      {"6", {"MaxPool2d", "64x12x12"}},
      {"8", {"Flatten", "9216"}},
      {"fc1", {"Linear", "9216, 128", "1,179,776", "1,179,648"}},
      {"fc1_bn", {"BatchNorm1d", " 256 "}},
      {"fc2", {"Linear", "1,290", "1,280"}},
  };
  for (const auto& [name, cells] : rows) {
    const std::string line = row(name);
    ASSERT_FALSE(line.empty()) << name << "\n" << r.out;
    for (const std::string& cell : cells) EXPECT_NE(line.find(cell), std::string::npos) << name << ": " << cell << "\n" << line;
  }
  EXPECT_NE(r.out.find("MACs per image: 12,051,072"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Parameter memory: 4.80 MB"), std::string::npos) << r.out;
}

TEST(Summary, InputShapeAndErrors) {
  const CommandResult r = bnlab("summary --input 1x32x32");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("32x30x30"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("12544"), std::string::npos) << r.out;  // 64x14x14 flattened

  const CommandResult bad = bnlab("summary --input 1x28x");
  EXPECT_EQ(bad.status, 2);
  EXPECT_EQ(bad.out, "bnlab: summary: --input: expected CxHxW (or CxL, or C) with positive sizes, got '1x28x'\n");
  const CommandResult small = bnlab("summary --input 1x5x5");
  EXPECT_EQ(small.status, 2);
  EXPECT_EQ(small.out.rfind("bnlab: preset:seed:", 0), 0u) << small.out;
}

}  // namespace
