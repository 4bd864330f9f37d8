#!/usr/bin/env bash
# The layout is the architecture: every folder of core/ sits on a layer, and a file may
# include only its own folder and the layers below it. Also: nothing outside store/sqlite/
# names the SQLite backend but the one factory that opens it (store/state_backend.cpp).
# Prints each offending include with file:line; exit 1 if there is one.
set -euo pipefail
core="${1:?usage: check_layers.sh CORE_DIR}"

# Bottom-up; folders on one line are one layer (they may not include each other).
layers=(
  "util log"
  "config"
  "schema ratelimit"
  "mapping plugin connectors"
  "rules"
  "model"
  "store"
  "pipeline"
  "sources dispatch"
  "poll server"
  "engine"
  "cli"
)
declare -A level
for i in "${!layers[@]}"; do
  for d in ${layers[$i]}; do level[$d]=$i; done
done

bad=0
while IFS= read -r file; do
  rel="${file#"$core"/}"
  dir="${rel%%/*}"
  [ "$dir" = "$rel" ] && continue  # main.cpp: the binary, above everything
  if [ -z "${level[$dir]+x}" ]; then
    echo "$rel: folder core/$dir/ is on no layer (add it to tests/layering/check_layers.sh)"
    bad=1
    continue
  fi
  while IFS=: read -r line inc; do
    target="${inc%%/*}"
    [ "$target" = "$dir" ] && continue
    if [ -z "${level[$target]+x}" ]; then continue; fi  # not a core folder (e.g. "recsync/...")
    if [ "${level[$target]}" -ge "${level[$dir]}" ]; then
      echo "$rel:$line: includes $inc: core/$target/ is not below core/$dir/"
      bad=1
    fi
  done < <(grep -nE '^#include "[a-z_]+/' "$file" | sed -E 's/^([0-9]+):#include "([^"]+)".*/\1:\2/')
  if [[ "$rel" != store/sqlite/* && "$rel" != store/state_backend.cpp ]] && grep -qE '^#include "store/sqlite/' "$file"; then
    echo "$rel: includes store/sqlite/: only store/state_backend.cpp opens the backend; use the interfaces in store/"
    bad=1
  fi
  if [[ "$rel" != store/sqlite/* ]] && grep -qE '^#include <sqlite3.h>' "$file"; then
    echo "$rel: includes <sqlite3.h> outside store/sqlite/"
    bad=1
  fi
done < <(find "$core" -name '*.hpp' -o -name '*.cpp' | sort)
if [ "$bad" = 0 ]; then echo "layers ok: $(find "$core" -name '*.hpp' -o -name '*.cpp' | wc -l) files"; fi
exit "$bad"
