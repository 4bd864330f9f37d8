# cmake -DRECSYNC=<recsync binary> -DPLUGIN=<file.so> -P plugin_check.cmake
# Passes only if `recsync plugin check PLUGIN` exits 0 AND prints its "conforms: " verdict.
execute_process(COMMAND ${RECSYNC} plugin check ${PLUGIN}
  OUTPUT_VARIABLE out ERROR_VARIABLE out RESULT_VARIABLE rc)
message("${out}")
if(NOT rc STREQUAL "0")
  message(FATAL_ERROR "recsync plugin check ${PLUGIN} exited with ${rc}, expected 0")
endif()
if(NOT out MATCHES "(^|\n)conforms: ")
  message(FATAL_ERROR "recsync plugin check ${PLUGIN} did not say 'conforms: '")
endif()
