# recsync_add_plugin(NAME SOURCES... [SCHEMAS json...])
# Builds one provider plugin the same way every time: a MODULE library named NAME.so
# (no "lib" prefix: the loader requires the file stem to equal the provider id), hidden
# visibility so that only the entry function is exported, linked only against the C ABI
# header and the SDK, written to ${RECSYNC_PLUGIN_OUTPUT_DIR}.
# SCHEMAS: JSON files embedded as C++ string constants; the header
# <NAME>_schemas.hpp declares `inline constexpr const char* schema_<stem>`.
set(RECSYNC_PLUGIN_VERSION_SCRIPT ${CMAKE_CURRENT_LIST_DIR}/plugin_exports.map)

function(recsync_add_plugin NAME)
  cmake_parse_arguments(P "" "OUTPUT_DIR" "SOURCES;SCHEMAS" ${ARGN})
  if(NOT P_SOURCES)
    set(P_SOURCES ${P_UNPARSED_ARGUMENTS})
  endif()
  if(NOT P_OUTPUT_DIR)
    set(P_OUTPUT_DIR ${RECSYNC_PLUGIN_OUTPUT_DIR})
  endif()
  add_library(${NAME} MODULE ${P_SOURCES})
  target_link_libraries(${NAME} PRIVATE recsync_plugin_sdk simdjson::simdjson)
  # The SDK parses host input with simdjson (provider_sdk.hpp: ThreadScratch::parse).
  target_compile_definitions(${NAME} PRIVATE RECSYNC_SDK_SIMDJSON=1)
  set_target_properties(${NAME} PROPERTIES
    PREFIX ""
    OUTPUT_NAME ${NAME}
    C_VISIBILITY_PRESET hidden
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    LIBRARY_OUTPUT_DIRECTORY ${P_OUTPUT_DIR})
  # Export the entry function and nothing else (hidden visibility alone still lets weak
  # std:: template instances through).
  target_link_options(${NAME} PRIVATE -Wl,--no-undefined -Wl,--exclude-libs,ALL
    -Wl,--version-script=${RECSYNC_PLUGIN_VERSION_SCRIPT})
  # GCC marks some template statics STB_GNU_UNIQUE, which makes dlclose a no-op: a hot
  # reload would silently keep running the old code.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    target_compile_options(${NAME} PRIVATE -fno-gnu-unique)
  endif()
  if(P_SCHEMAS)
    set(header ${CMAKE_CURRENT_BINARY_DIR}/${NAME}_gen/${NAME}_schemas.hpp)
    set(content "// Generated from ${NAME}'s schemas/ by recsync_add_plugin. Do not edit.\n#pragma once\n")
    foreach(schema ${P_SCHEMAS})
      get_filename_component(stem ${schema} NAME_WE)
      string(MAKE_C_IDENTIFIER ${stem} ident)
      file(READ ${schema} text)
      string(APPEND content "inline constexpr const char* schema_${ident} = R\"recsync_schema(${text})recsync_schema\";\n")
      set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${schema})
    endforeach()
    file(GENERATE OUTPUT ${header} CONTENT "${content}")
    target_include_directories(${NAME} PRIVATE ${CMAKE_CURRENT_BINARY_DIR}/${NAME}_gen)
  endif()
endfunction()

# recsync_ship_plugins(NAME...): the plugins the package installs, root-owned 0755 in
# lib/recsync/plugins (the loader refuses a plugin that group or others can write).
function(recsync_ship_plugins)
  install(TARGETS ${ARGN} LIBRARY DESTINATION lib/recsync/plugins
          PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
endfunction()
