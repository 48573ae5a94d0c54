#!/usr/bin/env bash
# The A/B performance gate: BenchmarkGate of the baseline commit
# (tests/bench/testdata/gate-baseline-commit) and of the work tree, built
# as two test binaries and run alternately, COUNT times each, on this
# machine in this run; then auth-benchgate compares the two. Both sides see
# the same machine, load and hour, so figures measured elsewhere (another
# machine, an idle one) never decide.
#
# Exit status: 0 passed, 1 failed (slower by more than the threshold), 3 the
# baseline commit is not in this clone (the caller falls back to the
# committed figures).
set -euo pipefail
cd "$(dirname "$0")/../.."
COUNT="${GATE_COUNT:-8}"
TIME="${GATE_TIME:-300ms}"
GO="${GO:-go}"
base=$(tr -d '[:space:]' < tests/bench/testdata/gate-baseline-commit)
if ! git cat-file -e "${base}^{commit}" 2>/dev/null; then
	echo "performance gate: baseline commit $base is not in this clone"
	exit 3
fi
out=bin/gate-ab
mkdir -p "$out"
wt=$(mktemp -d)
trap 'git worktree remove --force "$wt" >/dev/null 2>&1 || rm -rf "$wt"' EXIT
git worktree add -q --detach "$wt" "$base"
echo "==> building BenchmarkGate of $base and of the work tree"
(cd "$wt" && "$GO" test -c -o "$OLDPWD/$out/base.test" ./tests/bench/)
"$GO" test -c -o "$out/new.test" ./tests/bench/
: > "$out/base.txt"
: > "$out/new.txt"
run() { # run BINARY DIR >> FILE
	(cd "$2" && "$1" -test.run '^$' -test.bench '^BenchmarkGate$' -test.benchmem -test.benchtime "$TIME" -test.count 1)
}
for i in $(seq "$COUNT"); do
	echo "==> round $i of $COUNT"
	run "$PWD/$out/base.test" "$wt/tests/bench" >> "$out/base.txt"
	run "$PWD/$out/new.test" tests/bench >> "$out/new.txt"
done
"$GO" tool benchstat "$out/base.txt" "$out/new.txt" || true
"$GO" run ./cmd/auth-benchgate -base "$out/base.txt" -new "$out/new.txt"
