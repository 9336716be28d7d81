"""Compute kernels: Triton implementations with pure-torch reference twins.

:mod:`mlpot.kernels.dispatch` holds the closed table ``{operation: {backend: fn}}`` and
picks the backend (argument, or ``MLPOT_KERNELS=auto|torch|triton``; never a silent
fallback). Triton twins, same signatures as their references:

- :mod:`mlpot.kernels.triton_spline`: the enveloped spline basis and R = b(r) @ C, with
  first to third derivatives as kernels.
- :mod:`mlpot.kernels.triton_grid`: the fused grid node update (grid values stay on
  chip; the backward recomputes them).

Pure-torch references (the signatures a fused kernel must keep):

- :mod:`mlpot.kernels.spline`: cubic B-spline radial basis × C² polynomial envelope
  (``radial_basis``, ``spline_radial``).
- :mod:`mlpot.kernels.s2grid`: Gauss–Legendre × uniform S² grids with exact
  SH ↔ grid projections (``s2_grid``, ``product_grid``, ``grid_resolution``).
- :mod:`mlpot.kernels.grid_product`: fused SH → grid → products + MLP → SH node
  update (``grid_node_update``).
- :mod:`mlpot.kernels.gaunt`: exact real Gaunt tensors from e3nn's Wigner 3j and the
  CG twin of the product path (``gaunt_tensor``, ``cg_node_update``).
- :mod:`mlpot.kernels.neighbors`: padded neighbour slots and the edge → node density
  contraction (``neighbor_slots``, ``contract_density``).
- :mod:`mlpot.kernels.kinetic`: kinetic energy per system (``kinetic_energy``).
"""
