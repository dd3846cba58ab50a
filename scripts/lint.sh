#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Static checks of the library and the programs (make lint; .ci/run):
#
#  1. layers: every #include "..." of a file in lib/<layer>/ or src/ must be
#     of its own layer or of a layer it uses, as the table in
#     lib/CMakeLists.txt says (read from BUILD/ags_layers.txt); programs
#     include only include/agentsync/ and their own folder; the system
#     headers of SQLite, ngtcp2, sockets, libmicrohttpd, libcurl and libjwt
#     only where their layer is.
#  2. calls: no object of a layer refers to a function (or data) defined in
#     a layer it does not use (nm on BUILD's objects), the programs call only
#     the library's exported API, and libagentsync.so links neither
#     libmicrohttpd nor libcurl (readelf -d).
#  3. clang-tidy with the checks of .clang-tidy, on every library, daemon and
#     program source (BUILD/compile_commands.json).
#  4. cppcheck on the same sources.
#  5. licence: every source file has an SPDX-License-Identifier in its header
#     (scripts/spdx.sh --check; scripts/spdx.sh adds the missing ones).
#
# Usage: scripts/lint.sh [BUILD_DIR] (default build; configured and built).
# AGS_LINT_FAST=1 runs checks 1, 2 and 5 only (a few seconds).
# Exits non-zero when any check finds something; each finding is one line
# "file:line: what is wrong".
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
case "$build" in /*) ;; *) build="$top/$build" ;; esac
cd "$top"
table="$build/ags_layers.txt"
if [ ! -f "$table" ] || [ ! -f "$build/compile_commands.json" ]; then
	echo "lint: $build is not a configured build directory (make build first)" >&2
	exit 2
fi
jobs=$(nproc 2>/dev/null || echo 2)
failed=0
fail() {
	echo "$*"
	failed=1
}

# ---- the layer table ----
declare -A uses=()   # layer dir -> space-separated layer names it may use
declare -A dir_of=() # layer name -> its dir
while IFS= read -r line; do
	case "$line" in '#'* | '') continue ;; esac
	d=${line%%:*}
	uses[$d]=$(echo "${line#*:}" | xargs)
	dir_of[$(basename "$d")]=$d
done <"$table"

# The layer (a dir of the table, or "program") a source file belongs to.
layer_of() {
	case "$1" in
	lib/*/*) echo "lib/$(echo "$1" | cut -d/ -f2)" ;;
	src/agentsyncd/* | src/agentsyncd.c) echo src/agentsyncd ;;
	src/*) echo program ;;
	*) echo none ;;
	esac
}

# Whether layer $1 may include or call what layer dir $2 holds.
allowed() {
	local from=$1 to=$2 u
	[ "$from" = "$to" ] && return 0
	[ "$from" = program ] && return 1
	for u in ${uses[$from]:-}; do
		[ "${dir_of[$u]:-}" = "$to" ] && return 0
	done
	return 1
}

# Layers that show the layers above them only some of their headers.
declare -A exposes=(
	[lib/node]="node_agent.h" # the agent sees its node through this alone
)

# System headers only some layers may include: header prefix -> layers.
sys_rules=(
	"sqlite3.h|lib/store"
	"ngtcp2/|lib/transport"
	"sys/socket.h|lib/transport src/agentsyncd"
	"netinet/|lib/transport src/agentsyncd"
	"arpa/inet.h|lib/transport src/agentsyncd"
	"netdb.h|lib/transport src/agentsyncd"
	"microhttpd.h|src/agentsyncd"
	"curl/|program"
	"jwt.h|lib/codec"
)

# ---- 1. includes ----
sources=$(git ls-files 'lib/*.[ch]' 'src/*.[ch]')
for f in $sources; do
	from=$(layer_of "$f")
	[ "$from" = none ] && continue
	dir=$(dirname "$f")
	while IFS=: read -r ln inc; do
		kind=${inc:0:1}
		name=${inc:1:${#inc}-2}
		if [ "$kind" = '<' ]; then
			for r in "${sys_rules[@]}"; do
				pre=${r%%|*}
				case "$name" in "$pre"*) ;; *) continue ;; esac
				ok=0
				for l in ${r#*|}; do [ "$l" = "$from" ] && ok=1; done
				[ $ok = 1 ] || fail "$f:$ln: <$name> belongs to ${r#*|}, not to $from"
			done
			continue
		fi
		case "$name" in agentsync/*)
			[ -f "include/$name" ] || fail "$f:$ln: no public header include/$name"
			continue
			;;
		esac
		prog=$(echo "$f" | cut -d/ -f2)
		prog=${prog%.c}
		if [ -f "$dir/$name" ]; then
			target=$(realpath --relative-to="$top" "$dir/$name")
		elif [ "$from" = program ] && [ -f "src/$prog/$name" ]; then
			target="src/$prog/$name"
		elif [ -f "src/$name" ]; then
			target="src/$name"
		else
			target=""
			for d in "${dir_of[@]}"; do
				[ -f "$d/$name" ] && target="$d/$name"
			done
			if [ -z "$target" ]; then
				fail "$f:$ln: \"$name\" is no header of the library or the daemon"
				continue
			fi
		fi
		to=$(layer_of "$target")
		if [ "$from" = program ]; then
			# A program: its own folder only (src/NAME.c and src/NAME/).
			case "$target" in "src/$prog/"*) continue ;; esac
			fail "$f:$ln: a program includes only include/agentsync/ and src/$prog/, not $target"
		elif ! allowed "$from" "$to"; then
			fail "$f:$ln: $from may not include $target (layer $to; $from uses: ${uses[$from]:-nothing})"
		elif [ "$from" != "$to" ] && [ -n "${exposes[$to]:-}" ] &&
			! grep -qw -- "$(basename "$target")" <<<"${exposes[$to]}"; then
			fail "$f:$ln: $to shows the layers above it only ${exposes[$to]}, not $target"
		fi
	done < <(grep -n -E '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]' "$f" |
		sed -E 's/^([0-9]+):[[:space:]]*#[[:space:]]*include[[:space:]]*([<"][^>"]*[>"]).*/\1:\2/')
done

# ---- 2. calls between layers (the objects of the build) ----
objects_of() { # target name -> its object files
	find "$build" -path "*/CMakeFiles/$1.dir/*" -name '*.o' | sort
}
declare -A def_layer=() # symbol -> layer dir defining it
declare -A targets=()   # layer dir -> CMake targets of its objects
for l in "${!dir_of[@]}"; do targets[${dir_of[$l]}]="ags_$l"; done
targets[src/agentsyncd]="agentsyncd_config agentsyncd_api"
for d in "${!targets[@]}"; do
	for t in ${targets[$d]}; do
		for o in $(objects_of "$t"); do
			while read -r sym; do def_layer[$sym]=$d; done < <(nm -g --defined-only "$o" | awk '{print $3}')
		done
	done
done
if [ ${#def_layer[@]} -eq 0 ]; then
	fail "lint: no objects of the library in $build (make build first)"
fi
exported=$(nm -D --defined-only "$build/libagentsync.so" | awk '{print $3}' | sort -u)
declare -A public=()
for sym in $exported; do public[$sym]=1; done
check_refs() { # $1 layer dir, $2 object: every reference to another layer allowed?
	local from=$1 o=$2 sym to
	while read -r sym; do
		to=${def_layer[$sym]:-}
		[ -z "$to" ] && continue
		# The daemon, like any program, may call the exported API of every layer.
		[ "$from" = src/agentsyncd ] && [ -n "${public[$sym]:-}" ] && continue
		allowed "$from" "$to" || fail "$(realpath --relative-to="$build" "$o"): $from refers to $sym of $to (it uses: ${uses[$from]:-nothing})"
	done < <(nm -u "$o" | awk '{print $2}')
}
for d in "${!targets[@]}"; do
	for t in ${targets[$d]}; do
		for o in $(objects_of "$t"); do check_refs "$d" "$o"; done
	done
done
# Programs: only what libagentsync.so exports (the daemon's own code aside).
for t in agentsync_prog agentsyncd_prog; do
	for o in $(objects_of "$t"); do
		while read -r sym; do
			to=${def_layer[$sym]:-}
			case "$to" in lib/*) ;; *) continue ;; esac
			[ -n "${public[$sym]:-}" ] ||
				fail "$(realpath --relative-to="$build" "$o"): the program calls $sym, internal to $to"
		done < <(nm -u "$o" | awk '{print $2}')
	done
done

# The shared library: the daemon's and the CLI's libraries are not its.
while read -r lib; do
	case "$lib" in *microhttpd* | *curl*)
		fail "$build/libagentsync.so: links $lib, which only the programs use" ;;
	esac
done < <(readelf -d "$build/libagentsync.so" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')

# ---- 5. SPDX licence identifiers ----
scripts/spdx.sh --check || failed=1

if [ "${AGS_LINT_FAST:-0}" = 1 ]; then
	[ $failed = 0 ] && echo "lint: clean (layers, calls, licence)"
	exit $failed
fi

# ---- 3. clang-tidy (checks in .clang-tidy) ----
lint_sources=$(git ls-files 'lib/*.c' 'src/*.c')
tidy_out=$(mktemp)
trap 'rm -f "$tidy_out"' EXIT
# shellcheck disable=SC2086
if ! printf '%s\n' $lint_sources | xargs -P "$jobs" -n 4 clang-tidy -p "$build" --quiet \
	>"$tidy_out" 2>/dev/null; then
	:
fi
if grep -E ': (warning|error):' "$tidy_out" >/dev/null; then
	grep -E ': (warning|error):' "$tidy_out" | sed "s|^$top/||" | sort -u
	failed=1
fi

# ---- 4. cppcheck ----
# shellcheck disable=SC2086
if ! cppcheck --quiet --error-exitcode=1 --std=c11 --language=c --inline-suppr \
	--enable=warning,performance,portability --suppress=missingIncludeSystem \
	-D_GNU_SOURCE -DAGS_BUILDING_LIBRARY -Iinclude $(printf -- '-I%s ' "${dir_of[@]}") -Isrc \
	-j "$jobs" --template='{file}:{line}: {severity} ({id}): {message}' $lint_sources; then
	failed=1
fi

if [ $failed = 0 ]; then
	echo "lint: clean (layers, calls, licence, clang-tidy, cppcheck)"
fi
exit $failed
