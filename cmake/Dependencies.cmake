# Every dependency comes from Debian's packages (see scripts/setup).
find_package(Torch REQUIRED)          # libtorch-dev: tensors, never in a public header
find_package(nlohmann_json 3 REQUIRED)
find_package(fmt REQUIRED)
find_package(CLI11 REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
pkg_check_modules(UTF8PROC REQUIRED IMPORTED_TARGET libutf8proc)
find_package(Threads REQUIRED)
find_package(OpenMP REQUIRED)         # libgomp, the same runtime libtorch uses

# Debian's TorchConfig adds flags we do not want everywhere; keep only the
# libraries and include directories, on one interface target.
add_library(musespark_torch INTERFACE)
target_link_libraries(musespark_torch INTERFACE ${TORCH_LIBRARIES})
target_include_directories(musespark_torch SYSTEM INTERFACE ${TORCH_INCLUDE_DIRS})
# at::parallel_for is an inline template whose body is `#pragma omp parallel`
# (ATen is built with AT_PARALLEL_OPENMP): compiled without -fopenmp it runs
# every "parallel" loop of ours on one thread, silently.
target_link_libraries(musespark_torch INTERFACE OpenMP::OpenMP_CXX)
