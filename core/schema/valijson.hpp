// valijson, always built to throw. Without VALIJSON_USE_EXCEPTIONS it prints and calls
// abort() on a schema it cannot use ("type": "strang"), which took `recsync check` and a
// running engine reloading its rules down with it. Every file that includes valijson
// includes it through here, so all of them agree on its inline functions.
#pragma once

#if defined(VALIJSON_USE_EXCEPTIONS) && !VALIJSON_USE_EXCEPTIONS
#error "recsync needs valijson with exceptions"
#endif
#undef VALIJSON_USE_EXCEPTIONS
#define VALIJSON_USE_EXCEPTIONS 1

#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validator.hpp>
