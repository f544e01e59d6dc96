#!/usr/bin/env bash
# The three-stage recipe on Franka-Lift-v1, end to end, for one seed (BENCHMARKS.md, "The three-stage recipe on
# Franka-Lift-v1"):
#   bash docs/benchmarks/recipe_lift.sh SEED OUT_DIR
# Datasets go to OUT_DIR/datasets, runs to OUT_DIR/runs; the last line of each stage's output is its summary.
set -euo pipefail
seed=${1:?seed}
out=${2:?output directory}
task=Franka-Lift-v1
data=$out/datasets
runs=$out/runs
mkdir -p "$data" "$runs"
newest() { ls -d "$runs/$task/"*"_$1" | tail -n 1; }

# Data: 200 random episodes, 400 expert demonstrations, 400 with N(0, 0.1) noise on the executed actions (DART),
# 50 held out for the model check. 250 steps each; 262,500 env steps in all, 250,000 of them used for training.
worldloop collect --task $task --policy random --episodes 200 --out "$data/random" --seed $((100 * seed))
worldloop collect --task $task --policy expert --episodes 400 --out "$data/expert" --seed $((100 * seed + 1))
worldloop collect --task $task --policy expert --episodes 400 --out "$data/dart" --seed $((100 * seed + 2)) \
    --action-noise 0.1
worldloop collect --task $task --policy expert --episodes 50 --out "$data/heldout" --seed $((100 * seed + 3))

# 1. the world model; 2. behaviour cloning with the world-model loss on; 3. PPO from the cloned model, every
# checkpoint's deterministic policy evaluated (best.pt is the best of them); then best.pt over 1,000 episodes.
worldloop pretrain --data "$data/random" "$data/expert" --steps 3000 --seed "$seed" --log-root "$runs"
worldloop finetune --data "$data/expert" "$data/dart" --init "$(newest pretrain)" --steps 10000 --seed "$seed" \
    --log-root "$runs"
worldloop model-eval --run "$(newest finetune)" --data "$data/heldout"
worldloop train --task $task --policy world-action --init "$(newest finetune)" --seed "$seed" \
    --agent.critic-warmup-iterations 30 --agent.init-noise-std 0.1 --agent.learning-rate 1e-4 \
    --max-iterations 50 --save-interval 5 --checkpoint-eval-episodes 256 --log-root "$runs" --run-name recipe
worldloop play --run "$(newest recipe)" --checkpoint best --episodes 1000
