# cmake -DRECSYNC=<recsync binary> -DPLUGIN=<file.so> [-DCONFIG=<instance config JSON>] -P plugin_check.cmake
# Passes only if `recsync plugin check PLUGIN` exits 0 AND prints its "conforms: " verdict.
set(config_args)
if(DEFINED CONFIG)
  set(config_args --config ${CONFIG})
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
