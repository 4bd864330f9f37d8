# recsync_core: the engine as a library, so tests link exactly what the binary runs.
add_library(recsync_core STATIC
  cli/commands.cpp
  config/config.cpp
  config/yaml_source.cpp
  dispatch/concurrency_limit.cpp
  dispatch/dispatcher.cpp
  dispatch/http_executor.cpp
  dispatch/lane.cpp
  dispatch/lane_scheduler.cpp
  engine/dir_watcher.cpp
  engine/engine.cpp
  engine/runtime.cpp
  mapping/date_format.cpp
  mapping/mapping.cpp
  pipeline/ingest.cpp
  plugin/conformance.cpp
  plugin/provider_instance.cpp
  plugin/provider_library.cpp
  queue/task_queue.cpp
  ratelimit/report_capture.cpp
  ratelimit/server_quota.cpp
  ratelimit/token_bucket.cpp
  rules/condition.cpp
  rules/rule_set.cpp
  schema/fast_check.cpp
  schema/json_schema.cpp
  schema/schema_lint.cpp
  server/api.cpp
  store/dead_letter_replay.cpp
  store/sqlite_db.cpp
  store/state_store.cpp
  util/json_path.cpp)
target_include_directories(recsync_core PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
target_compile_definitions(recsync_core PUBLIC RECSYNC_VERSION="${PROJECT_VERSION}")
target_link_libraries(recsync_core PUBLIC
  recsync_http recsync_plugin_sdk
  yaml-cpp CURL::libcurl SQLite::SQLite3 PkgConfig::RE2 simdjson::simdjson spdlog::spdlog nlohmann_json::nlohmann_json
  Threads::Threads ${CMAKE_DL_LIBS})
# Heavy headers used across many translation units.
target_precompile_headers(recsync_core PRIVATE <nlohmann/json.hpp> <yaml-cpp/yaml.h> <spdlog/spdlog.h>)

add_executable(recsync main.cpp)
target_link_libraries(recsync PRIVATE recsync_core)
install(TARGETS recsync RUNTIME DESTINATION bin)
set_target_properties(recsync PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
