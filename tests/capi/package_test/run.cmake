# cmake -DBUILD_DIR= -DPREFIX= -DSOURCE_DIR= -DWORK_DIR= -DGENERATOR= -DC_COMPILER= -P run.cmake
#
# Installs the build into PREFIX, then builds SOURCE_DIR against it twice:
# with find_package(musespark) (C and C++) and with `pkg-config --cflags --libs musespark`.
# Prints "package test passed" when both programs print the version.
function(run)
  execute_process(COMMAND ${ARGV} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGV}\n${out}\n${err}")
  endif()
  set(out "${out}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE ${PREFIX} ${WORK_DIR})
run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${PREFIX})

foreach(path include/musespark/musespark.h include/musespark/engine.hpp lib/libmusespark.so
             lib/cmake/musespark/musespark-config.cmake lib/cmake/musespark/musespark-config-version.cmake
             lib/cmake/musespark/musespark-targets.cmake lib/pkgconfig/musespark.pc)
  if(NOT EXISTS ${PREFIX}/${path})
    message(FATAL_ERROR "not installed: ${PREFIX}/${path}")
  endif()
endforeach()

# Nothing installed may point back into the build or need torch.
file(GLOB config_files ${PREFIX}/lib/cmake/musespark/*.cmake)
foreach(file ${config_files} ${PREFIX}/lib/pkgconfig/musespark.pc)
  file(READ ${file} text)
  if(text MATCHES "torch|${BUILD_DIR}")
    message(FATAL_ERROR "${file} refers to torch or the build tree:\n${text}")
  endif()
endforeach()
file(GLOB headers ${PREFIX}/include/musespark/*)
foreach(file ${headers})
  file(STRINGS ${file} torch_includes REGEX "#include.*torch")
  if(torch_includes)
    message(FATAL_ERROR "${file} includes torch: ${torch_includes}")
  endif()
endforeach()

# find_package
run(${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${WORK_DIR}/cmake -G ${GENERATOR} -DCMAKE_C_COMPILER=${C_COMPILER}
    -DCMAKE_PREFIX_PATH=${PREFIX})
run(${CMAKE_COMMAND} --build ${WORK_DIR}/cmake)
run(${WORK_DIR}/cmake/package_test)
if(NOT out MATCHES "^musespark [0-9]+\\.[0-9]+\\.[0-9]+")
  message(FATAL_ERROR "find_package build printed: ${out}")
endif()
message(STATUS "find_package: ${out}")
run(${WORK_DIR}/cmake/package_test_cpp)
if(NOT out MATCHES "^musespark [0-9]+\\.[0-9]+\\.[0-9]+ \\(C\\+\\+: thinking")
  message(FATAL_ERROR "find_package C++ build printed: ${out}")
endif()
message(STATUS "find_package, C++: ${out}")

# pkg-config
find_program(PKG_CONFIG pkg-config REQUIRED)
set(ENV{PKG_CONFIG_PATH} ${PREFIX}/lib/pkgconfig)
run(${PKG_CONFIG} --cflags --libs musespark)
string(STRIP "${out}" flags)
separate_arguments(flags UNIX_COMMAND "${flags}")
run(${C_COMPILER} -std=c99 -Wall -Wextra -pedantic -Werror ${SOURCE_DIR}/main.c ${flags} -o ${WORK_DIR}/pkgconfig_test)
set(ENV{LD_LIBRARY_PATH} ${PREFIX}/lib)
run(${WORK_DIR}/pkgconfig_test)
if(NOT out MATCHES "^musespark [0-9]+\\.[0-9]+\\.[0-9]+")
  message(FATAL_ERROR "pkg-config build printed: ${out}")
endif()
message(STATUS "pkg-config: ${out}")
message(STATUS "package test passed")
