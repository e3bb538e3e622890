#!/usr/bin/env bash
# run-fuzz.sh SRCDIR BUILDDIR - build the libFuzzer targets with clang and run
# each for a bounded time (the `fuzz-run` test of suite `fuzz`).
#
#   BUILDDIR        a separate meson build dir (CC=clang, -Dfuzz=enabled,
#                   ASan+UBSan, -fsanitize=fuzzer-no-link on all code);
#                   configured on first use, rebuilt incrementally after
#   corpus          SRCDIR/tests/fuzz/corpus/<t> seeds (read-only);
#                   new inputs go to BUILDDIR/corpus/<t>, kept between runs
#   artifacts       BUILDDIR/artifacts/<t>-crash-... on a failure
#
# Fails (exit 1) on any crash, leak, timeout or sanitizer report, or if a
# target cannot be built.  Environment:
#   DMASVC_FUZZ_SECONDS   seconds per target (default 45)
#   DMASVC_FUZZ_TARGETS   space-separated target names (default: all four)
#   DMASVC_FUZZ_JOBS      libFuzzer -jobs/-workers per target (default 1)
set -euo pipefail
src=$(cd "$1" && pwd)
build=$2
secs=${DMASVC_FUZZ_SECONDS:-45}
targets=${DMASVC_FUZZ_TARGETS:-control sqe ring session}
jobs=${DMASVC_FUZZ_JOBS:-1}

if ! command -v clang >/dev/null; then
	echo "run-fuzz: clang not found (scripts/setup --fuzz installs it)" >&2
	exit 1
fi

opts=(-Dfuzz=enabled -Dtests=enabled -Dfault_injection=true -Ddebug_checks=true -Db_sanitize=address,undefined -Db_lundef=false
      "-Dc_args=-fsanitize=fuzzer-no-link -fno-sanitize-recover=undefined"
      -Dvm_tests=disabled -Dqemu_tests=disabled -Ddpdk=disabled)
if [ -e "$build/build.ninja" ]; then
	meson setup --reconfigure "$build" "$src" "${opts[@]}" >"$build.setup.log" 2>&1 ||
		{ cat "$build.setup.log" >&2; exit 1; }
else
	mkdir -p "$(dirname "$build")"
	CC=clang meson setup "$build" "$src" "${opts[@]}" >"$build.setup.log" 2>&1 ||
		{ cat "$build.setup.log" >&2; exit 1; }
fi
ninja_targets=()
for t in $targets; do ninja_targets+=("tests/fuzz/fuzz-$t"); done
ninja -C "$build" "${ninja_targets[@]}" >"$build.ninja.log" 2>&1 ||
	{ tail -50 "$build.ninja.log" >&2; exit 1; }

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
status=0
for t in $targets; do
	work="$build/corpus/$t"
	mkdir -p "$work" "$build/artifacts"
	log="$build/fuzz-$t.log"
	echo "run-fuzz: $t for ${secs}s"
	par=()
	[ "$jobs" -gt 1 ] && par=(-jobs="$jobs" -workers="$jobs")
	if "$build/tests/fuzz/fuzz-$t" -max_total_time="$secs" -timeout=20 -rss_limit_mb=2560 \
		-print_final_stats=1 "${par[@]}" \
		-artifact_prefix="$build/artifacts/$t-" \
		"$work" "$src/tests/fuzz/corpus/$t" >"$log" 2>&1; then
		grep -E '^stat::number_of_executed_units|^stat::average_exec_per_sec|^stat::peak_rss_mb' "$log" |
			sed "s/^/run-fuzz: $t: /" || true
		grep -E '^#[0-9]+.*DONE' "$log" | tail -1 | sed "s/^/run-fuzz: $t: /" || true
	else
		status=1
		echo "run-fuzz: $t FAILED; reproducer in $build/artifacts/ ; log:" >&2
		grep -v '^#[0-9]' "$log" | tail -60 >&2
	fi
done
exit $status
