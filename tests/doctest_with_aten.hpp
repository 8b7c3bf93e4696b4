// For tests that use ATen: include this instead of <doctest/doctest.h>.
//
// Debian's libtorch pulls in glog, whose CHECK* macros would otherwise
// silently replace doctest's (a failing glog CHECK aborts the whole run), so
// ATen comes first and glog's macros are dropped before doctest defines its own.
#pragma once

#include <ATen/ATen.h>

#undef CHECK
#undef CHECK_EQ
#undef CHECK_NE
#undef CHECK_LT
#undef CHECK_LE
#undef CHECK_GT
#undef CHECK_GE
#include <doctest/doctest.h>
