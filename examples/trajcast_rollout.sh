#!/usr/bin/env bash
# TrajCast end to end on liquid argon: reference MD -> train a forecaster -> roll it out
# with `mlpot rollout` -> compare RDF and MSD with the reference (plots).
#
#   bash examples/trajcast_rollout.sh [OUT_DIR]                # ~10 min on one CPU core
#   MLPOT_EXAMPLE_QUICK=1 bash examples/trajcast_rollout.sh OUT # tiny sizes, under a minute
#
# Steps (each a command you can run alone):
#   1. examples/trajcast_reference.py: 108 Ar atoms, Lennard-Jones MD at 90 and 120 K,
#      frames every forecast interval (20 fs = 10 MD steps of 2 fs) in an HDF5 store for
#      training, and one more pair of trajectories with another seed, held out;
#   2. `mlpot train examples/mlpot-ar-trajcast.yaml` (the shipped forecaster's stage-1
#      config) on the training store, with --set overrides for paths and length;
#   3. `mlpot rollout`: force-free MD from the held-out 120 K trajectory's first frame,
#      CSVR thermostat on the predicted velocities, one frame per forecast step;
#   4. examples/trajcast_compare.py: RDF and MSD of the rollout vs the held-out reference,
#      OUT_DIR/rdf.png, OUT_DIR/msd.png, OUT_DIR/comparison.csv.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-trajcast_example}"
mkdir -p "$out"

if [[ "${MLPOT_EXAMPLE_QUICK:-0}" == "1" ]]; then
    frames=12; trajectories=1; equilibration=200; train_steps=5; valid=0; rollout_steps=10
else
    frames=60; trajectories=2; equilibration=2000; train_steps=1500; valid=0.25
    rollout_steps=300
fi

python "$here/trajcast_reference.py" ar "$out/ar_reference.h5" --forecast-fs 20 \
    --frames "$frames" --trajectories "$trajectories" --equilibration-fs "$equilibration"
python "$here/trajcast_reference.py" ar "$out/ar_heldout.h5" --forecast-fs 20 \
    --frames "$frames" --trajectories 1 --equilibration-fs "$equilibration" --seed 99
mlpot train "$here/mlpot-ar-trajcast.yaml" --set run_dir="$out/run" \
    --set "data.train=[$out/ar_reference.h5]" --set data.valid_fraction="$valid" \
    --set train.max_steps="$train_steps" --set checkpoint.every_steps="$train_steps"
python "$here/trajcast_compare.py" start "$out/ar_heldout.h5" "$out/start.extxyz"
mlpot rollout "$out/start.extxyz" --forecaster "$out/run/final.pt" \
    --steps "$rollout_steps" --every 1 --temperature 120 --tau 40 --seed 1 \
    --traj "$out/rollout.extxyz" --log "$out/rollout.csv" --no-progress
python "$here/trajcast_compare.py" compare "$out/ar_heldout.h5" "$out/rollout.extxyz" "$out"
