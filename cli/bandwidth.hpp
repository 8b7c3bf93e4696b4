// Measuring the machine's memory read bandwidth: the roofline for decode
// (DESIGN.md, "Performance: how we measure").
#pragma once

namespace musespark::cli {

// Bytes per second read by `threads` threads streaming through a buffer much
// larger than the caches; the best of a few passes.
double measure_read_bandwidth(int threads);

}  // namespace musespark::cli
