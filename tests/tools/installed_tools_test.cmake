# cmake -DBUILD_DIR=... -DSOURCE_DIR=... -DPREFIX=... -P installed_tools_test.cmake
#
# Installs the build into a fresh prefix, moves the prefix elsewhere (a relocated install must
# work too), and runs the installed tools with LD_LIBRARY_PATH unset: they find libmii through
# their RUNPATH ($ORIGIN/../lib), or exit 127 "libmii.so.0: cannot open shared object file".
cmake_minimum_required(VERSION 3.25)  # script mode: IN_LIST and the other current policies
set(moved "${PREFIX}-moved")
file(REMOVE_RECURSE "${PREFIX}" "${moved}")
execute_process(COMMAND "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${PREFIX}"
                RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cmake --install ${BUILD_DIR} --prefix ${PREFIX} failed (${rc}): ${err}")
endif()
file(RENAME "${PREFIX}" "${moved}")
unset(ENV{LD_LIBRARY_PATH})

function(run_installed what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "installed ${what}: exit ${rc}\n${err}")
  endif()
  set(out "${out}" PARENT_SCOPE)
endfunction()

file(GLOB tools "${moved}/bin/mii-*")
foreach(name mii-generate mii-tokenize mii-launch)
  if(NOT "${moved}/bin/${name}" IN_LIST tools)
    message(FATAL_ERROR "${name} is not installed in ${moved}/bin (found: ${tools})")
  endif()
endforeach()
foreach(tool IN LISTS tools)
  run_installed("${tool} --help" "${tool}" --help)
endforeach()

set(model "${SOURCE_DIR}/tests/fixtures/models/demo-llama")
run_installed("mii-generate" "${moved}/bin/mii-generate" "${model}" --backend host --greedy --max-new-tokens 4
              --prompt "DeepSpeed is")
if(NOT out MATCHES "^DeepSpeed is .")
  message(FATAL_ERROR "installed mii-generate printed '${out}', not a completion of 'DeepSpeed is'")
endif()
run_installed("mii-tokenize" "${moved}/bin/mii-tokenize" "${model}" INPUT_FILE "${SOURCE_DIR}/tests/fixtures/demo_text.txt")
if(NOT out MATCHES "^[0-9]+( [0-9]+)*\n$")
  message(FATAL_ERROR "installed mii-tokenize printed '${out}', not token ids")
endif()
file(REMOVE_RECURSE "${moved}")
message(STATUS "installed tools run from ${moved}/bin without LD_LIBRARY_PATH")
