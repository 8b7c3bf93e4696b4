// The one translation unit that compiles stb_image and stb_image_write
// (Debian's libstb-dev headers, /usr/include/stb).
//
// Why compile them here rather than link Debian's libstb.so: we want only the
// PNG and JPEG decoders (less untrusted-input surface than stb's BMP, GIF,
// PSD, TGA, HDR, PIC and PNM parsers), no stdio (files are read by
// image.cpp, which enforces ImageLimits::max_bytes first), and no extra
// runtime dependency or CMake change. The symbols are hidden so they neither
// leak from libmusespark.so nor clash with a host application's own stb.
//
// Allocation: through stb_alloc.hpp, so that Image::decode can cap what a
// small file makes stb allocate (a PNG decompression bomb).
//
// Thread-safety: stb_image 2.27 keeps its failure reason in a thread_local
// when compiled as C++11 or later; we never touch its global flip/unpremultiply
// switches, so decoding is safe from any thread.

#include "vision/stb_alloc.hpp"

#include <cstdlib>

namespace musespark::detail {
namespace {
thread_local StbAllocationCap* current_cap = nullptr;

bool refuse(size_t bytes) { return current_cap != nullptr && !current_cap->admit(bytes); }
}  // namespace

StbAllocationCap::StbAllocationCap(size_t bytes) : bytes_(bytes), previous_(current_cap) { current_cap = this; }
StbAllocationCap::~StbAllocationCap() { current_cap = previous_; }

void* stb_malloc(size_t bytes) { return refuse(bytes) ? nullptr : std::malloc(bytes); }
void* stb_realloc(void* pointer, size_t bytes) { return refuse(bytes) ? nullptr : std::realloc(pointer, bytes); }
void stb_free(void* pointer) { std::free(pointer); }

}  // namespace musespark::detail

#define STBI_MALLOC(bytes) musespark::detail::stb_malloc(bytes)
#define STBI_REALLOC(pointer, bytes) musespark::detail::stb_realloc(pointer, bytes)
#define STBI_FREE(pointer) musespark::detail::stb_free(pointer)

#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_NO_STDIO
#define STBI_FAILURE_USERMSG

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO

// The C library headers stb includes, first and with default visibility:
// inside the hidden region below they would declare e.g. __assert_fail hidden
// and a Debug build (asserts on) would fail to link.
#include <assert.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wall"
#pragma GCC diagnostic ignored "-Wextra"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC visibility push(hidden)
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>
#pragma GCC visibility pop
#pragma GCC diagnostic pop
