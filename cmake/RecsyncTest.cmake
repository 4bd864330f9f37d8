# recsync_add_test: how every GoogleTest executable in the tree is built and registered.
include(GoogleTest)

# recsync_add_test(NAME [ONE_PROCESS] SOURCES... [LIBS ...]): one GoogleTest executable, each
# TEST a ctest. ONE_PROCESS: the whole executable is ONE ctest instead (timeout 600 s), for
# suites that start something expensive once per process (e.g. testkit::PostgresServer).
function(recsync_add_test NAME)
  cmake_parse_arguments(T "ONE_PROCESS" "" "SOURCES;LIBS" ${ARGN})
  if(NOT T_SOURCES)
    set(T_SOURCES ${T_UNPARSED_ARGUMENTS})
  endif()
  add_executable(${NAME} ${T_SOURCES})
  target_link_libraries(${NAME} PRIVATE ${T_LIBS} GTest::gtest GTest::gmock GTest::gtest_main)
  target_include_directories(${NAME} PRIVATE ${PROJECT_SOURCE_DIR}/tests)
  target_compile_definitions(${NAME} PRIVATE
    RECSYNC_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
    RECSYNC_BINARY_DIR="${PROJECT_BINARY_DIR}"
    RECSYNC_PLUGIN_DIR="${RECSYNC_PLUGIN_OUTPUT_DIR}")
  if(T_ONE_PROCESS)
    add_test(NAME ${NAME} COMMAND ${NAME})
    set_tests_properties(${NAME} PROPERTIES TIMEOUT 600 RUN_SERIAL FALSE)
  else()
    gtest_discover_tests(${NAME} DISCOVERY_MODE PRE_TEST PROPERTIES TIMEOUT 120)
  endif()
endfunction()
