#!/usr/bin/env bash
# scripts/fuzz.sh: build the libFuzzer harnesses (fuzz/, clang, ASan + UBSan,
# -fno-sanitize-recover=all) and run each for SECONDS (CI: 60; before a release: 600).
#   scripts/fuzz.sh [SECONDS] [PARSER ...]     parsers: yaml_config safetensors model_config jsonl tokenizer_json h5_checkpoint
# Seeds come from fuzz/corpus/<parser> (read-only: new inputs go to a scratch folder). A crash, a
# leak or a sanitizer report stops the run with a non-zero status and leaves the input in
# fuzz/regressions/<parser>/ (crash-*, leak-*, timeout-*): fix the parser, keep the file, and the
# fuzz_replay_<parser> ctest replays it from then on. Prints one table row per parser.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-60}
shift || true
PARSERS=("$@")
[ ${#PARSERS[@]} -gt 0 ] || PARSERS=(yaml_config safetensors model_config jsonl tokenizer_json h5_checkpoint)
BUILD=${CISPO_FUZZ_BUILD_DIR:-build-fuzz}
CC=clang cmake -S . -B "$BUILD" -DCISPO_FUZZ=ON >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target $(printf 'fuzz_%s ' "${PARSERS[@]}") >/dev/null
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export LSAN_OPTIONS=suppressions=$PWD/fuzz/lsan.supp:print_suppressions=0
echo "| parser | seconds | executions | exec/s | corpus entries | result |"
echo "| --- | --- | --- | --- | --- | --- |"
status=0
for p in "${PARSERS[@]}"; do
  scratch=$(mktemp -d "/tmp/cispo_fuzz_${p}_XXXXXX")
  log="$scratch.log"
  rc=0
  "$BUILD/fuzz/fuzz_$p" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="fuzz/regressions/$p/" "$scratch" "fuzz/corpus/$p" >"$log" 2>&1 || rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  corpus=$(ls "$scratch" | wc -l)
  result=ok
  if [ $rc -ne 0 ]; then
    result="FAILED (exit $rc; input in fuzz/regressions/$p/, log $log)"
    status=1
    grep -E "ERROR|SUMMARY|runtime error" "$log" | head -5 >&2 || true
  fi
  echo "| $p | $SECS | $execs | $rate | $(( corpus + $(ls fuzz/corpus/$p | wc -l) )) | $result |"
  rm -rf "$scratch"
  [ $rc -ne 0 ] || rm -f "$log"
done
exit $status
