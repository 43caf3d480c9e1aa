# The tools suite runs the programs built in tools/ (and bench's mii-bench when it is built): their
# paths are compiled in, and they are built before the suite.
get_property(mii_tool_targets GLOBAL PROPERTY MII_TOOL_TARGETS)
if(TARGET mii_test_tools AND TARGET mii-generate)
  target_compile_definitions(mii_test_tools PRIVATE
    MII_TOOLS_DIR="$<TARGET_FILE_DIR:mii-generate>"
    MII_GENERATE_PATH="$<TARGET_FILE:mii-generate>"
    MII_LAUNCH_PATH="$<TARGET_FILE:mii-launch>")
  add_dependencies(mii_test_tools ${mii_tool_targets})
  # bench/ is added after tests/, so the target cannot be asked for yet; the option says it will be.
  if(MII_BUILD_BENCH AND EXISTS ${PROJECT_SOURCE_DIR}/bench/mii_bench.cpp)
    target_compile_definitions(mii_test_tools PRIVATE MII_BENCH_PATH="$<TARGET_FILE:mii-bench>")
    add_dependencies(mii_test_tools mii-bench)
  endif()
  set_tests_properties(tools PROPERTIES TIMEOUT 900)

  # The installed tools start as installed, without LD_LIBRARY_PATH (issue 17, row 3).
  add_test(NAME tools_installed
    COMMAND ${CMAKE_COMMAND} -DBUILD_DIR=${PROJECT_BINARY_DIR} -DSOURCE_DIR=${PROJECT_SOURCE_DIR}
            -DPREFIX=${CMAKE_CURRENT_BINARY_DIR}/tools-install-prefix
            -P ${CMAKE_CURRENT_SOURCE_DIR}/tools/installed_tools_test.cmake)
  set_tests_properties(tools_installed PROPERTIES LABELS host TIMEOUT 300)
endif()
