#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# SPDX license identifiers in the headers of agentsync's source files.
#
#   scripts/spdx.sh          adds "SPDX-License-Identifier: Apache-2.0" to every
#                            source file that lacks it, as a comment of the
#                            file's language on its first line (after a "#!"
#                            line), and says which files it changed
#   scripts/spdx.sh --check  changes nothing; prints "FILE: no SPDX-License-Identifier"
#                            for each source file without one and exits 1 if any
#                            (scripts/lint.sh runs this)
#
# Source files are the files git tracks (plus new ones not ignored) whose
# names match the table in comment_of below; data (JSON other than JSON
# Schemas, fuzz corpora, test data) and documents (Markdown) are not.
# A file "has" an identifier when one of its first 5 lines contains
# "SPDX-License-Identifier:".
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
ID="SPDX-License-Identifier: Apache-2.0"

# The comment that carries the identifier in file $1, or nothing when the
# file is not a source file.
comment_of() {
	case "$1" in
	fuzz/corpus/* | tests/data/* | debian/changelog | debian/copyright | debian/source/format | \
		debian/*.install | debian/*.manpages | debian/*.docs | debian/*.dirs | debian/*.links | \
		debian/*.lintian-overrides | debian/*.examples)
		return 0 ;; # data, or formats without comments (checked by lintian)
	esac
	case "$1" in
	*.c | *.h) echo "/* $ID */" ;;
	*.js | *.mjs | *.cjs) echo "// $ID" ;;
	*.sh | *.py | *.cmake | *.yaml | *.yml | *.service | *.in | *.bash | *.zsh | */CMakeLists.txt | \
		CMakeLists.txt | Makefile | */Makefile | .ci/run | debian/rules | debian/control | \
		debian/*.postinst | debian/*.postrm | debian/*.preinst | debian/*.prerm | debian/*.sysusers | \
		debian/*.tmpfiles | debian/watch | .clang-format | .clang-tidy | .gitignore)
		echo "# $ID" ;;
	*.scd) echo "; $ID" ;;
	*.schema.json) echo "json" ;;
	*) ;;
	esac
}

has_id() { head -n 5 -- "$1" | grep -q 'SPDX-License-Identifier:'; }

check=0
[ "${1:-}" = --check ] && check=1
missing=0
while IFS= read -r f; do
	[ -f "$f" ] || continue
	c=$(comment_of "$f")
	[ -n "$c" ] || continue
	has_id "$f" && continue
	if [ $check = 1 ]; then
		echo "$f: no SPDX-License-Identifier (scripts/spdx.sh adds it)"
		missing=1
		continue
	fi
	tmp=$(mktemp "$f.spdx.XXXXXX")
	if [ "$c" = json ]; then
		# A JSON Schema keeps it in "$comment" right after the opening brace.
		if ! head -c 1 "$f" | grep -q '{'; then
			echo "spdx: $f does not start with '{': add \"\$comment\": \"$ID\" by hand" >&2
			rm -f "$tmp"
			missing=1
			continue
		fi
		{ printf '{\n  "$comment": "%s",' "$ID"; tail -c +2 "$f"; } >"$tmp"
	elif head -n 1 "$f" | grep -q '^#!'; then
		{ head -n 1 "$f"; echo "$c"; tail -n +2 "$f"; } >"$tmp"
	elif case "$f" in *.scd) true ;; *) false ;; esac then
		# scdoc wants its preamble ("name(section)") first.
		{ head -n 1 "$f"; echo "$c"; tail -n +2 "$f"; } >"$tmp"
	else
		{ echo "$c"; cat "$f"; } >"$tmp"
	fi
	chmod --reference="$f" "$tmp"
	mv "$tmp" "$f"
	echo "spdx: added to $f"
done < <(git ls-files --cached --others --exclude-standard | sort -u)
exit $missing
