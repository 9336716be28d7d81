#!/usr/bin/env bash
# NVE, NVT and NPT molecular dynamics of fcc copper with the shipped ML model
# mlpot-metals-small, from the command line; then an RDF (mdtraj) and a
# temperature/energy-vs-time plot (PNG) from the DCD trajectories and CSV logs.
#
#   bash examples/md_from_cli.sh [OUT_DIR]                 # 256 atoms, 2 ps per ensemble
#   MLPOT_EXAMPLE_QUICK=1 bash examples/md_from_cli.sh OUT  # 32 atoms, 20 steps each
#
# Writes OUT_DIR/{nve,nvt,npt}.dcd (+ .pdb topology), .csv thermo logs, rdf.png,
# thermo.png and rdf.csv. Units: K, fs, GPa on the command line; the logs are in eV, K,
# GPa, Å³ (see `mlpot md --help`).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-md_example}"
mkdir -p "$out"

if [[ "${MLPOT_EXAMPLE_QUICK:-0}" == "1" ]]; then
    steps=20; every=2
    # a 2x2x2 cubic fcc Cu cell (32 atoms) for the quick run
    python -c "import ase.build, ase.io; ase.io.write('$out/cu.xyz', ase.build.bulk('Cu', 'fcc', a=3.61, cubic=True).repeat(2))"
    structure="$out/cu.xyz"
else
    steps=1000; every=10
    structure="$here/cu_fcc_256.xyz"
fi
common=(--model mlpot-metals-small --timestep 2 --steps "$steps" --every "$every"
        --temperature 300 --no-progress)

# NVE: total energy should stay constant (the summary prints its drift).
mlpot md "$structure" "${common[@]}" --ensemble nve --traj "$out/nve.dcd" --log "$out/nve.csv"
# NVT with the CSVR (Bussi) thermostat, 100 fs coupling.
mlpot md "$structure" "${common[@]}" --ensemble nvt --thermostat csvr --tau-t 100 \
    --traj "$out/nvt.dcd" --log "$out/nvt.csv"
# NPT at 1 bar (0.0001 GPa) by stochastic cell rescaling, isotropic cell.
mlpot md "$structure" "${common[@]}" --ensemble npt --pressure 0.0001 --tau-p 500 \
    --traj "$out/npt.dcd" --log "$out/npt.csv"

python "$here/analyze_md.py" "$out" nve nvt npt
