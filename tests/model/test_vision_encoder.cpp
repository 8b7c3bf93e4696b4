// The vision encoder (ViT + projector) against an independent torch
// implementation (tests/tools/vision_reference.py) on tiny random models, and
// its errors: missing tensors, wrong shapes, bad pixels.

#include "doctest_with_aten.hpp"

#include "model/vision_encoder.hpp"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/config.hpp"
#include "model/safetensors.hpp"
#include "model/vision_config.hpp"
#include "musespark/error.hpp"
#include "musespark/model.hpp"
#include "support.hpp"

namespace fs = std::filesystem;
using musespark::Error;
using musespark::ErrorKind;
using namespace musespark::detail;
using test_support::python_tool;
using test_support::read_floats;
using test_support::temp_dir;
using test_support::tiny_model;

namespace {

struct Case {
  const char* name;
  const char* args;
};

// Two configurations: different image and patch sizes, widths, activations,
// stored dtypes and sharding.
const Case kTanh = {"vision-tanh",
                    "--arch qwen3 --hidden 64 --layers 1 --heads 4 --kv-heads 2 --intermediate 96 --seed 41 --vision "
                    "--vision-image-size 28 --vision-patch 14 --vision-hidden 32 --vision-layers 2 --vision-heads 4 "
                    "--vision-intermediate 64 --vision-act gelu_pytorch_tanh"};
const Case kGelu = {"vision-gelu",
                    "--arch llama --hidden 48 --layers 1 --heads 4 --kv-heads 2 --intermediate 64 --seed 42 --dtype bf16 "
                    "--shards 2 --vision --vision-image-size 32 --vision-patch 8 --vision-hidden 48 --vision-layers 3 "
                    "--vision-heads 3 --vision-intermediate 80 --vision-act gelu --vision-projector-act gelu_pytorch_tanh"};

// A convolutional stem (two 3x3 convolutions, the second with stride 2)
// before a patch embedding of kernel 8 / 2 = 4.
const Case kStem = {"vision-stem",
                    "--arch qwen3 --hidden 64 --layers 1 --heads 4 --kv-heads 2 --intermediate 96 --seed 43 --vision "
                    "--vision-image-size 32 --vision-patch 8 --vision-hidden 32 --vision-layers 1 --vision-heads 4 "
                    "--vision-intermediate 64 --vision-stem 6,10 --vision-stem-strides 1,2"};

struct Loaded {
  fs::path dir;
  VisionConfig vision;
  int64_t text_hidden = 0;
};

Loaded load(const Case& c) {
  Loaded l;
  l.dir = tiny_model(c.name, c.args);
  auto vision = load_vision_config(l.dir / "config.json");
  REQUIRE(vision.has_value());
  l.vision = *vision;
  l.text_hidden = load_model_config(l.dir / "config.json").hidden_size;
  return l;
}

// Deterministic pixels in CHW order, roughly what normalisation gives.
std::vector<float> test_pixels(const VisionConfig& v, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> px(v.num_channels * v.image_size * v.image_size);
  for (float& x : px) x = normal(rng);
  return px;
}

// The reference's output for `pixels`, [tokens, hidden] flattened.
std::vector<float> reference(const Loaded& l, const std::vector<float>& pixels, const std::string& tag) {
  fs::path tmp = temp_dir("vision-" + tag);
  std::ofstream(tmp / "pixels.f32", std::ios::binary)
      .write(reinterpret_cast<const char*>(pixels.data()), static_cast<std::streamsize>(pixels.size() * sizeof(float)));
  auto meta = nlohmann::json::parse(python_tool("vision_reference.py " + l.dir.string() + " --pixels " +
                                                (tmp / "pixels.f32").string() + " --out " + (tmp / "out.f32").string()));
  REQUIRE(meta["tokens"].get<int64_t>() == l.vision.num_patches());
  REQUIRE(meta["hidden"].get<int64_t>() == l.text_hidden);
  return read_floats(tmp / "out.f32");
}

std::vector<float> to_floats(const at::Tensor& t) {
  at::Tensor f = t.to(at::kFloat).contiguous();
  return std::vector<float>(f.data_ptr<float>(), f.data_ptr<float>() + f.numel());
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, double(std::fabs(a[i] - b[i])));
  return m;
}

// Writes `dir/model.safetensors` holding every tensor of `store` for which
// `keep` is true, with the shape `reshape` gives (the bytes are cut or
// zero-padded to fit), and copies config.json beside it.
void rewrite_model(const WeightStore& store, const fs::path& dir, const std::function<bool(const std::string&)>& keep,
                   const std::function<std::vector<int64_t>(const TensorView&)>& reshape) {
  nlohmann::json header = nlohmann::json::object();
  std::vector<std::pair<const TensorView*, std::vector<int64_t>>> tensors;
  size_t offset = 0;
  for (const std::string& name : store.names()) {
    if (!keep(name)) continue;
    const TensorView* v = store.find(name);
    std::vector<int64_t> shape = reshape(*v);
    int64_t numel = 1;
    for (int64_t d : shape) numel *= d;
    const size_t nbytes = static_cast<size_t>(numel) * element_size(v->dtype);
    header[name] = {{"dtype", std::string(dtype_name(v->dtype))}, {"shape", shape}, {"data_offsets", {offset, offset + nbytes}}};
    tensors.emplace_back(v, shape);
    offset += nbytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  fs::create_directories(dir);
  std::ofstream out(dir / "model.safetensors", std::ios::binary);
  const uint64_t n = text.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out << text;
  for (const auto& [v, shape] : tensors) {
    int64_t numel = 1;
    for (int64_t d : shape) numel *= d;
    std::vector<char> bytes(static_cast<size_t>(numel) * element_size(v->dtype), 0);
    std::memcpy(bytes.data(), v->data, std::min(bytes.size(), v->nbytes));
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  fs::copy_file(store.directory() / "config.json", dir / "config.json", fs::copy_options::overwrite_existing);
}

std::string error_message(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("vision encoder: output equals the Python reference (f32, three configurations)") {
  for (const Case* c : {&kTanh, &kGelu, &kStem}) {
    CAPTURE(c->name);
    Loaded l = load(*c);
    WeightStore store = WeightStore::open(l.dir);
    VisionEncoder enc(l.vision, store, l.text_hidden, at::kFloat);
    CHECK(enc.tokens_per_image() == l.vision.num_patches());
    CHECK(enc.text_hidden() == l.text_hidden);
    CHECK(enc.config().image_size == l.vision.image_size);

    std::vector<float> px = test_pixels(l.vision, 7);
    std::vector<float> ref = reference(l, px, c->name);
    at::Tensor out = enc.encode(std::span<const float>(px));
    CHECK((out.scalar_type() == at::kFloat));
    REQUIRE(out.dim() == 2);
    CHECK(out.size(0) == l.vision.num_patches());
    CHECK(out.size(1) == l.text_hidden);
    std::vector<float> ours = to_floats(out);
    REQUIRE(ours.size() == ref.size());
    CHECK(max_abs_diff(ours, ref) < 1e-4);

    // The tensor form agrees, and the output is not trivially constant.
    at::Tensor pixels = at::from_blob(px.data(), {3, l.vision.image_size, l.vision.image_size}, at::kFloat);
    CHECK(at::equal(enc.encode(pixels), out));
    CHECK(out.std().item<double>() > 0.1);
  }
}

TEST_CASE("vision encoder: each patch's output depends on where it is and on the other patches") {
  Loaded l = load(kTanh);  // 2x2 patches of 14
  VisionEncoder enc(l.vision, WeightStore::open(l.dir), l.text_hidden, at::kFloat);
  std::vector<float> px = test_pixels(l.vision, 3);
  at::Tensor a = at::from_blob(px.data(), {3, 28, 28}, at::kFloat).clone();
  // Swap the top-left and bottom-right patches: without position embeddings
  // and with attention permutation-equivariant, rows 0 and 3 would just swap.
  at::Tensor b = a.clone();
  b.narrow(1, 0, 14).narrow(2, 0, 14).copy_(a.narrow(1, 14, 14).narrow(2, 14, 14));
  b.narrow(1, 14, 14).narrow(2, 14, 14).copy_(a.narrow(1, 0, 14).narrow(2, 0, 14));
  at::Tensor oa = enc.encode(a), ob = enc.encode(b);
  CHECK_FALSE(at::allclose(oa[0], ob[3], 1e-3, 1e-3));
  // Changing one patch changes the others' rows too (full attention).
  at::Tensor c = a.clone();
  c.narrow(1, 0, 14).narrow(2, 0, 14).mul_(-1);
  at::Tensor oc = enc.encode(c);
  CHECK_FALSE(at::allclose(oa[3], oc[3], 1e-4, 1e-4));
}

TEST_CASE("vision encoder: bf16 compute stays close to the f32 reference") {
  for (const Case* c : {&kTanh, &kGelu}) {
    CAPTURE(c->name);
    Loaded l = load(*c);
    VisionEncoder enc(l.vision, WeightStore::open(l.dir), l.text_hidden, at::kBFloat16);
    std::vector<float> px = test_pixels(l.vision, 9);
    std::vector<float> ref = reference(l, px, std::string(c->name) + "-bf16");
    at::Tensor out = enc.encode(std::span<const float>(px));
    CHECK((out.scalar_type() == at::kBFloat16));
    std::vector<float> ours = to_floats(out);
    REQUIRE(ours.size() == ref.size());
    double max_ref = 0;
    for (float v : ref) max_ref = std::max(max_ref, double(std::fabs(v)));
    CHECK(max_abs_diff(ours, ref) < 0.05 * max_ref + 0.02);
  }
}

TEST_CASE("vision encoder: encode is safe from several threads at once") {
  Loaded l = load(kTanh);
  const VisionEncoder enc(l.vision, WeightStore::open(l.dir), l.text_hidden, at::kFloat);
  std::vector<float> px = test_pixels(l.vision, 5);
  at::Tensor expected = enc.encode(std::span<const float>(px));
  std::vector<at::Tensor> outs(4);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < outs.size(); ++i)
    threads.emplace_back([&, i] {
      for (int r = 0; r < 5; ++r) outs[i] = enc.encode(std::span<const float>(px));
    });
  for (auto& t : threads) t.join();
  for (const auto& o : outs) CHECK(at::equal(o, expected));
}

TEST_CASE("vision encoder: bad pixels are refused with an error naming them") {
  Loaded l = load(kTanh);
  VisionEncoder enc(l.vision, WeightStore::open(l.dir), l.text_hidden, at::kFloat);
  auto kind_and_field = [&](const std::function<void()>& f) {
    try {
      f();
    } catch (const Error& e) {
      CHECK(e.kind() == ErrorKind::invalid_argument);
      CHECK(e.field() == "pixels");
      return std::string(e.message());
    }
    FAIL("no error");
    return std::string();
  };
  CHECK(kind_and_field([&] { enc.encode(at::zeros({3, 28, 27})); }).find("expected [3,28,28]") != std::string::npos);
  CHECK(kind_and_field([&] { enc.encode(at::zeros({1, 3, 28, 28})); }).find("shape") != std::string::npos);
  CHECK(kind_and_field([&] { enc.encode(at::zeros({3, 28, 28}, at::kLong)); }).find("floating") != std::string::npos);
  at::Tensor nan = at::zeros({3, 28, 28});
  nan[1][2][3] = std::numeric_limits<float>::quiet_NaN();
  CHECK(kind_and_field([&] { enc.encode(nan); }).find("NaN") != std::string::npos);
  std::vector<float> short_px(3 * 28 * 28 - 1);
  CHECK(kind_and_field([&] { enc.encode(std::span<const float>(short_px)); }).find("expected 2352") !=
        std::string::npos);
  // A double tensor of the right shape is accepted and converted.
  CHECK((enc.encode(at::zeros({3, 28, 28}, at::kDouble)).scalar_type() == at::kFloat));
}

TEST_CASE("vision encoder: a missing or misshapen tensor is named") {
  Loaded l = load(kTanh);
  WeightStore good = WeightStore::open(l.dir);
  auto same_shape = [](const TensorView& v) { return v.shape; };
  const std::string missing = "vision_tower.vision_model.encoder.layers.1.self_attn.k_proj.bias";
  for (const std::string& name :
       {missing, std::string("multi_modal_projector.linear_2.weight"),
        std::string("vision_tower.vision_model.embeddings.patch_embedding.weight")}) {
    CAPTURE(name);
    fs::path dir = temp_dir("vision-missing");
    rewrite_model(good, dir, [&](const std::string& n) { return n != name; }, same_shape);
    WeightStore store = WeightStore::open(dir);
    std::string what = error_message([&] { VisionEncoder(l.vision, store, l.text_hidden, at::kFloat); });
    CHECK(what.find(name) != std::string::npos);
    CHECK(what.find("missing") != std::string::npos);
  }

  // A stem's convolution.
  {
    Loaded stem = load(kStem);
    WeightStore with_stem = WeightStore::open(stem.dir);
    const std::string name = "vision_tower.vision_model.embeddings.stem.1.weight";
    fs::path dir = temp_dir("vision-missing-stem");
    rewrite_model(with_stem, dir, [&](const std::string& n) { return n != name; }, same_shape);
    std::string what = error_message([&] { VisionEncoder(stem.vision, WeightStore::open(dir), stem.text_hidden, at::kFloat); });
    CHECK(what.find(name) != std::string::npos);
    // The stem's model read as if it had none: the patch embedding's input channels differ.
    VisionConfig plain = stem.vision;
    plain.stem_channels.clear();
    plain.stem_strides.clear();
    what = error_message([&] { VisionEncoder(plain, with_stem, stem.text_hidden, at::kFloat); });
    CHECK(what.find("patch_embedding.weight") != std::string::npos);
  }

  // The position table sized for another image size.
  const std::string pos = "vision_tower.vision_model.embeddings.position_embedding.weight";
  fs::path dir = temp_dir("vision-misshapen");
  rewrite_model(good, dir, [](const std::string&) { return true; }, [&](const TensorView& v) {
    return v.name == pos ? std::vector<int64_t>{9, v.shape[1]} : v.shape;
  });
  std::string what = error_message([&] { VisionEncoder(l.vision, WeightStore::open(dir), l.text_hidden, at::kFloat); });
  CHECK(what.find(pos) != std::string::npos);
  CHECK(what.find("[9,32]") != std::string::npos);
  CHECK(what.find("[4,32]") != std::string::npos);

  // A projector built for another text model.
  what = error_message([&] { VisionEncoder(l.vision, good, l.text_hidden + 8, at::kFloat); });
  CHECK(what.find("multi_modal_projector.linear_1.weight") != std::string::npos);
  CHECK(error_message([&] { VisionEncoder(l.vision, good, 0, at::kFloat); }).find("text_hidden") != std::string::npos);
}

TEST_CASE("vision encoder: the text model still loads from a multimodal folder") {
  Loaded l = load(kGelu);
  auto model = musespark::Model::load(l.dir);
  CHECK(model->info().vocab_size == 512);
  // Without a tokenizer, the image tokens take the ids just below bos/eos.
  CHECK(l.vision.image_token_id == 512 - 3);
}

TEST_CASE("vision encoder: a multimodal model counts the vision tower and projector among its parameters") {
  Loaded l = load(kGelu);
  auto model = musespark::Model::load(l.dir);
  REQUIRE(model->info().vision);
  // Every tensor the folder holds is a weight the model loads.
  const auto store = musespark::detail::WeightStore::open(l.dir);
  int64_t in_file = 0, vision_part = 0;
  for (const std::string& name : store.names()) {
    const int64_t n = store.find(name)->numel();
    in_file += n;
    if (name.rfind("vision_tower.", 0) == 0 || name.rfind("multi_modal_projector.", 0) == 0) vision_part += n;
  }
  CHECK(vision_part > 0);
  CHECK(model->info().parameter_count == in_file);
}
