# cmake -DRECSYNC=<recsync binary> -DPLUGIN=<file.so> [-DCONFIG_FILE=<settings.json> | -DCONFIG=<JSON>] [-DEXPECT=<regex>] -P plugin_check.cmake
# Passes only if `recsync plugin check PLUGIN` exits 0 AND prints its "conforms: " verdict.
# CONFIG_FILE / CONFIG: the instance config (JSON) for a provider that needs settings (--config).
# EXPECT: a line the output must also have (a check that must run, not be skipped).
set(config_args "")
if(CONFIG_FILE)
  file(READ "${CONFIG_FILE}" config_json)
  set(config_args --config "${config_json}")
elseif(DEFINED CONFIG)
  set(config_args --config "${CONFIG}")
endif()
execute_process(COMMAND ${RECSYNC} plugin check ${PLUGIN} ${config_args}
  OUTPUT_VARIABLE out ERROR_VARIABLE out RESULT_VARIABLE rc)
message("${out}")
if(NOT rc STREQUAL "0")
  message(FATAL_ERROR "recsync plugin check ${PLUGIN} exited with ${rc}, expected 0")
endif()
if(NOT out MATCHES "(^|\n)conforms: ")
  message(FATAL_ERROR "recsync plugin check ${PLUGIN} did not say 'conforms: '")
endif()
if(EXPECT AND NOT out MATCHES "${EXPECT}")
  message(FATAL_ERROR "recsync plugin check ${PLUGIN} printed no line matching '${EXPECT}'")
endif()
