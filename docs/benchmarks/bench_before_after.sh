#!/bin/bash
# worldloop bench --suite at a base commit and at the working tree, alternating (idle machine), then
# one-step profiles of Reach and Lift on both.
#   bash docs/benchmarks/bench_before_after.sh BASE_COMMIT [ROUNDS] > out.txt
# The base is checked out as a git worktree in a temporary folder named worldloop, imported first via
# PYTHONPATH; the working tree is the installed (editable) worldloop.
set -e
base=${1:?base commit}; rounds=${2:-2}
repo=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
git -C "$repo" worktree add -q --detach "$tmp/worldloop" "$base"
trap 'git -C "$repo" worktree remove --force "$tmp/worldloop"; rm -rf "$tmp"' EXIT
cli='import sys; from worldloop.scripts.cli import main; sys.argv[0]="worldloop"; sys.exit(main())'
cd "$tmp"
for round in $(seq "$rounds"); do
  for side in before after; do
    pp=$([ $side = before ] && echo "$tmp" || echo "")
    echo "== $side ($([ $side = before ] && echo "$base" || echo "working tree")) round $round $(date +%T)"
    PYTHONPATH=$pp python -c "$cli" bench --suite
  done
done
for side in before after; do
  pp=$([ $side = before ] && echo "$tmp" || echo "")
  for task in Franka-Reach-v0 Franka-Lift-v0; do
    echo "== profile $side $task $(date +%T)"
    PYTHONPATH=$pp python "$repo/docs/benchmarks/env_step_profile.py" "$task" 1024
  done
done
