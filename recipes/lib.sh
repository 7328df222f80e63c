# Sourced by every table recipe (recipes/*/table.sh): the one way a recipe decides that a run is finished,
# so that an interrupted table continues where it stopped and a finished one runs nothing, and where a run goes.

run_dir() {  # run_dir TABLE KIND ROOT FIELD=VALUE...: the run's folder, as advkit.layout declares it for the
  # table's builder too
  python3 -m advkit.layout "$@"
}

metric() {  # metric RUN KEY: that number from a finished run's metrics.json, or nothing
  [ -f "$1/metrics.json" ] && python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["metrics"].get(sys.argv[2], ""))' \
    "$1/metrics.json" "$2"
}

finished() {  # finished RUN [KEY VALUE]: RUN wrote its metrics.json (and, given KEY, its metric KEY is VALUE)
  [ -f "$1/metrics.json" ] && { [ $# -lt 3 ] || [ "$(metric "$1" "$2")" = "$3" ]; }
}

setting() {  # setting RECIPE.toml TABLE KEY: one value of a TOML recipe (the one place it is written)
  python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))[sys.argv[2]][sys.argv[3]])' "$1" "$2" "$3"
}

go_on() {  # go_on RUN: how an unfinished fine-tuning run starts: from its checkpoint (--resume) if it left one,
  # else afresh (--overwrite)
  if [ -f "$1/checkpoint.pt" ]; then echo --resume; else echo --overwrite; fi
}
