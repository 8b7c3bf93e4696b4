// The decode kernels against libtorch on Qwen3-0.6B's matrix shapes, with
// the machine's read bandwidth measured in the same run:
//
//   build/bin/bench_linear [--threads 2] [--rows 1,8,16] [--layers 10] [--repeat 5]
//
// `--layers` copies of one layer's matrices (q|k|v, o, gate|up, down) so the
// working set is far beyond the last-level cache, as in a real decode step.
// Prints, per row count, milliseconds per pass and GB/s of weights streamed.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <chrono>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "bandwidth.hpp"
#include "kernels/cpu_features.hpp"
#include "kernels/packed_linear.hpp"
#include "openmp_env.hpp"

using namespace musespark;

namespace {

struct Matrix {
  at::Tensor plain;  // bf16 [n, k]
  kernels::PackedLinear bf16, int8, q4;
};

template <typename Fn>
double seconds(int repeat, Fn&& fn) {
  fn();  // warm-up
  double best = 1e30;
  for (int r = 0; r < repeat; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  cli::prefer_short_openmp_spin(argv);
  int threads = 2, layers = 10, repeat = 5;
  std::vector<int64_t> row_counts = {1, 8, 16};
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--threads") threads = std::stoi(v);
    else if (k == "--layers") layers = std::stoi(v);
    else if (k == "--repeat") repeat = std::stoi(v);
    else if (k == "--rows") {
      row_counts.clear();
      std::stringstream ss(v);
      for (std::string item; std::getline(ss, item, ',');) row_counts.push_back(std::stoll(item));
    }
  }
  at::set_num_threads(threads);
  const int64_t H = 1024, q = 2048, kv = 1024, I = 3072;
  const int64_t shapes[4][2] = {{q + 2 * kv, H}, {H, q}, {2 * I, H}, {H, I}};
  std::vector<Matrix> ms;
  int64_t bf16_bytes = 0, int8_bytes = 0, q4_bytes = 0;
  for (int l = 0; l < layers; ++l)
    for (const auto& s : shapes) {
      Matrix m;
      m.plain = (at::randn({s[0], s[1]}) * 0.05).to(at::kBFloat16);
      m.bf16 = kernels::PackedLinear::pack({&m.plain, 1}, {}, kernels::WeightFormat::bf16);
      m.int8 = kernels::PackedLinear::pack({&m.plain, 1}, {}, kernels::WeightFormat::int8);
      m.q4 = kernels::PackedLinear::pack({&m.plain, 1}, {}, kernels::WeightFormat::q4);
      bf16_bytes += m.bf16.weight_bytes();
      q4_bytes += m.q4.weight_bytes();
      int8_bytes += m.int8.weight_bytes();
      ms.push_back(std::move(m));
    }
  const double bandwidth = cli::measure_read_bandwidth(threads);
  std::printf("isa %s, %d threads, %.0f MB bf16 / %.0f MB int8 / %.0f MB q4 per pass, read bandwidth %.1f GB/s\n",
              kernels::isa_name(kernels::active_isa()), threads, bf16_bytes / 1e6, int8_bytes / 1e6, q4_bytes / 1e6,
              bandwidth / 1e9);
  std::printf("rows  libtorch ms (GB/s)   bf16 ms (GB/s)   int8 ms (GB/s)   q4 ms (GB/s)   bf16/libtorch  int8/bf16  q4/bf16\n");
  for (int64_t rows : row_counts) {
    at::Tensor x = at::randn({rows, I}).to(at::kBFloat16);
    auto input = [&](const Matrix& m) { return x.narrow(1, 0, m.plain.size(1)); };
    const double t_torch = seconds(repeat, [&] {
      for (const auto& m : ms) at::linear(input(m), m.plain);
    });
    const double t_bf16 = seconds(repeat, [&] {
      for (const auto& m : ms) m.bf16(input(m), at::kBFloat16);
    });
    const double t_int8 = seconds(repeat, [&] {
      for (const auto& m : ms) m.int8(input(m), at::kBFloat16);
    });
    const double t_q4 = seconds(repeat, [&] {
      for (const auto& m : ms) m.q4(input(m), at::kBFloat16);
    });
    std::printf("%4lld  %8.2f (%5.1f)     %7.2f (%5.1f)   %7.2f (%5.1f)   %6.2f (%5.1f)   %8.2fx     %6.2fx   %6.2fx\n",
                (long long)rows, t_torch * 1e3, bf16_bytes / t_torch / 1e9, t_bf16 * 1e3, bf16_bytes / t_bf16 / 1e9,
                t_int8 * 1e3, int8_bytes / t_int8 / 1e9, t_q4 * 1e3, q4_bytes / t_q4 / 1e9, t_torch / t_bf16,
                t_bf16 / t_int8, t_bf16 / t_q4);
  }
  return 0;
}
