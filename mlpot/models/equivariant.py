"""`EquivariantPotential`: spline radial basis + spherical-grid many-body products.

See :class:`EquivariantPotential` for the architecture, the grid-resolution rule, the
measured aliasing bound of the grid MLP and the parity behaviour.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as tnf
from torch import nn

from mlpot.graph import AtomicGraph
from mlpot.kernels.dispatch import requested_backend
from mlpot.models.base import Potential, species_to_numbers
from mlpot.models.equivariant_layers import EdgeFeatures, EquivariantLayer
from mlpot.models.references import SystemReferences, check_charge_spin
from mlpot.models.repulsion import ZBLRepulsion

BACKENDS = ("grid", "cg")


@dataclass(frozen=True)
class EquivariantPotentialConfig:
    """Hyper-parameters of :class:`EquivariantPotential` (= its constructor arguments).

    Attributes:
        species: atomic numbers the model accepts.
        cutoff: r_c, Å.
        channels: C, feature channels per (l, m).
        lmax: L, highest spherical-harmonic degree of the edge SH and the density.
        hidden_lmax: highest degree of the node features passed between layers
            (≤ lmax; MACE's hidden irreps 0e+1o correspond to 1).
        correlation: ν_max, body order − 1 of each node update (products of ν ≤ ν_max
            copies of the neighbour density).
        num_layers: message-passing layers (≥ 1).
        num_knots: K, cubic B-spline basis functions per radial weight.
        backend: "grid" (spherical-grid products) or "cg" (exact Gaunt/CG products).
        self_mlp: add the per-grid-point MLP (grid) / gated MLP (cg) self-connection.
        readout_hidden: hidden width of the final per-atom energy MLP.
        avg_num_neighbors: normalisation of the aggregated density.
        max_charge: |total charge| the charge embedding covers, e.
        max_spin: largest spin multiplicity the spin embedding covers.
        grid_oversample: extra polynomial degree of the grid beyond the exact rule
            (reduces MLP aliasing; products are exact for any value ≥ 0).
        pair_repulsion: add the ZBL short-range repulsion
            (:class:`~mlpot.models.repulsion.ZBLRepulsion`) to the learned energy.
        system_references: add per-system reference energies of the charge and spin
            states (:class:`~mlpot.models.references.SystemReferences`, fitted with E0
            by ``mlpot train``; default on, off in checkpoints written before the
            option existed).
    """

    species: tuple[int, ...]
    cutoff: float = 5.0
    channels: int = 64
    lmax: int = 3
    hidden_lmax: int = 1
    correlation: int = 3
    num_layers: int = 2
    num_knots: int = 12
    backend: str = "grid"
    self_mlp: bool = True
    readout_hidden: int = 16
    avg_num_neighbors: float = 30.0
    max_charge: int = 10
    max_spin: int = 11
    grid_oversample: int = 4
    pair_repulsion: bool = False
    system_references: bool = True


class EquivariantPotential(Potential):
    """Equivariant message-passing potential (MACE/NequIP family, Facet-style parts).

    Layer t maps node features h ``[N, (L_h+1)², C]`` to new features: messages
    m_ij = R¹(r_ij)·Y(r̂_ij)·s_j + R²(r_ij)·h_j (channel-wise) with cubic-spline radial
    weights (:mod:`mlpot.kernels.spline`, C² envelope, exactly 0 for r ≥ cutoff),
    density A_i = Σ_j m_ij / avg_num_neighbors up to l = lmax, factors
    x_k = W_k,l A + W'_k,l h_i (k = 1 … correlation), node update
    Σ_ν λ_ν(Z_i) Π_{k≤ν} x_k plus a per-grid-point MLP of x_1 (Facet-style
    self-connection), evaluated on a Gauss–Legendre × uniform S² grid and projected
    back (backend "grid"), or with exact Gaunt/CG contractions and a gated MLP (backend
    "cg"). Features passed on keep l ≤ hidden_lmax; the last layer keeps l = 0. Per-atom
    energy = Σ_t readout_t(h_t[l=0]) (linear; the last an MLP) minus the same for the
    element's neutral singlet atom without neighbours (so an isolated neutral atom has
    exactly E0, and an ion's charge/spin embedding can shift its energy); the base
    class adds scale/shift and E0. h_0 = species + charge + spin embeddings (scalars).

    Grid rule: res_β = ⌈(D+1)/2⌉, res_α = D + 1 with
    D = correlation·lmax + lmax_out + grid_oversample. For any grid_oversample ≥ 0 the
    product path equals the exact CG backend to rounding (~1e-15) and is exactly
    E(3)-equivariant (tests: 1e-10). The MLP path is not band-limited and aliases.
    Measured rotation error at initialisation (float64, default 64 channels, lmax 3,
    ethylamine + water / rattled Cu–Ni cell): grid_oversample = 0: energy 3e-5, forces
    7e-4 (relative to the largest force); grid_oversample = 4 (default): energy 1e-6,
    forces 5e-6. ``self_mlp=False`` makes the grid backend exactly equivariant.

    Kernels: ``kernels`` = ``"auto" | "torch" | "triton"`` (None: ``MLPOT_KERNELS`` at
    call time, default ``"auto"``: Triton for CUDA tensors, the torch reference
    otherwise) picks the spline-basis and grid-update backends
    (:mod:`mlpot.kernels.dispatch`); asking for Triton where it cannot run raises. A
    run-time choice, not a hyper-parameter: it is not part of the config or checkpoint.

    CUDA graphs / ``torch.compile(fullgraph=True)``: the Triton kernels launch without
    host synchronisation, but the model as a whole is not capturable yet: the padded
    neighbour layout reads K_max (the largest neighbour count) on the host
    (:func:`~mlpot.kernels.neighbors.neighbor_slots`), ``torch.unique`` picks the
    isolated-atom references (elements present), and the charge/spin range check
    reads a boolean — each a device → host sync with a data-dependent shape. Capture
    needs static shapes per bucket (N and K_max padded to bucket sizes, the reference
    keys computed once per set of systems), which is not built.

    Parity: all features have natural parity (Y_l has parity (−1)^l) and products
    only create natural-parity terms (Gaunt coefficients vanish for odd l₁+l₂+l₃), so
    both backends are invariant under improper rotations too (E(3), not just SE(3)):
    mirror images (enantiomers) get identical energies; pseudoscalar terms such as
    triple products a·(b×c) cannot be represented. Tested in
    ``tests/mlpot/test_equivariant_symmetry.py``.

    Defaults, from measurements on 2-core CPU, float32: 2 layers, 64 channels, lmax 3,
    hidden_lmax 1, correlation 3 (MACE's 64x0e+64x1o, max_ell 3 reference setting),
    12 knots (overfitting 20 EMT Cu–Ni cells, 0.08 Å rattle, 600 Adam steps: force
    RMSE 14.2 meV/Å with K = 8, 10.3 with K = 12), grid_oversample 4 (100× smaller
    MLP aliasing for ~1.5× node-update cost), 5 Å cutoff.
    """

    config: EquivariantPotentialConfig
    # checkpoints written before system_references existed have none
    legacy_config: ClassVar[dict[str, Any]] = {"system_references": False}

    def __init__(
        self,
        species: Sequence[int | str],
        cutoff: float = 5.0,
        channels: int = 64,
        lmax: int = 3,
        hidden_lmax: int = 1,
        correlation: int = 3,
        num_layers: int = 2,
        num_knots: int = 12,
        backend: str = "grid",
        self_mlp: bool = True,
        readout_hidden: int = 16,
        avg_num_neighbors: float = 30.0,
        max_charge: int = 10,
        max_spin: int = 11,
        grid_oversample: int = 4,
        pair_repulsion: bool = False,
        system_references: bool = True,
        kernels: str | None = None,
    ) -> None:
        super().__init__(species, cutoff)
        if not 0 <= hidden_lmax <= lmax:
            raise ValueError(f"hidden_lmax must lie in [0, lmax={lmax}], got {hidden_lmax}")
        _validate(backend, channels, lmax, correlation, num_layers, num_knots,
                  avg_num_neighbors, max_charge, max_spin, grid_oversample)
        self.config = EquivariantPotentialConfig(
            species=tuple(species_to_numbers(species)), cutoff=float(cutoff),
            channels=int(channels), lmax=int(lmax),
            hidden_lmax=int(hidden_lmax), correlation=int(correlation),
            num_layers=int(num_layers), num_knots=int(num_knots), backend=backend,
            self_mlp=bool(self_mlp), readout_hidden=int(readout_hidden),
            avg_num_neighbors=float(avg_num_neighbors), max_charge=int(max_charge),
            max_spin=int(max_spin), grid_oversample=int(grid_oversample),
            pair_repulsion=bool(pair_repulsion), system_references=bool(system_references))
        if pair_repulsion:
            self.repulsion = ZBLRepulsion(self.config.species, self.cutoff)
        if system_references:
            self.system_references = SystemReferences(max_charge, max_spin)
        num_species = len(self.config.species)
        self.species_embedding = nn.Parameter(torch.randn(num_species, channels))
        self.charge_embedding = nn.Parameter(torch.zeros(2 * max_charge + 1, channels))
        self.spin_embedding = nn.Parameter(torch.zeros(max_spin, channels))
        self.layers = nn.ModuleList(
            EquivariantLayer(
                num_species, channels, lmax, 0 if t == num_layers - 1 else hidden_lmax,
                correlation, num_knots, self.cutoff, lmax_in=None if t == 0 else hidden_lmax,
                backend=backend,
                self_mlp=self_mlp, avg_num_neighbors=avg_num_neighbors,
                grid_oversample=grid_oversample)
            for t in range(num_layers))
        self.readouts = nn.ParameterList(
            nn.Parameter(torch.randn(channels) / channels**0.5) for _ in range(num_layers - 1))
        self.readout_w1 = nn.Parameter(torch.randn(channels, readout_hidden) / channels**0.5)
        self.readout_b1 = nn.Parameter(torch.zeros(readout_hidden))
        self.readout_w2 = nn.Parameter(torch.randn(readout_hidden) / readout_hidden**0.5)
        self.set_kernels(kernels)

    def set_kernels(self, kernels: str | None) -> None:
        """Choose the kernel backend (``"auto" | "torch" | "triton"``, None: ``MLPOT_KERNELS``
        at call time), e.g. after :func:`mlpot.load_model`. Changes no parameter."""
        if kernels is not None:
            requested_backend(kernels)  # validates the name
        self.kernels = kernels
        for layer in self.layers:
            layer.kernels = kernels  # type: ignore[assignment]  # nn.Module.__setattr__

    def embed(self, graph: AtomicGraph, species: torch.Tensor) -> torch.Tensor:
        """``[N, 1, C]`` initial scalar features from species, charge and spin."""
        c = self.config
        charge, spin = graph.charge, graph.spin
        check_charge_spin(charge, spin, c.max_charge, c.max_spin)
        per_system = (self.charge_embedding[charge + c.max_charge]
                      + self.spin_embedding[spin - 1])
        return (self.species_embedding[species] + per_system[graph.system_index])[:, None]

    def atomic_energies(
        self, graph: AtomicGraph, edge_vectors: torch.Tensor, species: torch.Tensor
    ) -> torch.Tensor:
        """Learned energy of each atom minus that of the same element's neutral
        (charge 0, multiplicity 1) atom without neighbours, so an isolated neutral atom's
        energy is exactly its E0 while charge and spin still shift the energy of an
        isolated ion or radical (a per-atom offset the model learns)."""
        c = self.config
        h = self.embed(graph, species)
        # isolated neutral references, one per element present, run as extra edge-less
        # nodes in the same pass
        present, inverse = torch.unique(species, return_inverse=True)
        neutral = (self.species_embedding[present] + self.charge_embedding[c.max_charge]
                   + self.spin_embedding[0])[:, None]
        n = graph.num_atoms
        edges = EdgeFeatures.build(graph.require_edges()[0], edge_vectors, n + len(present), c.lmax,
                                   c.num_knots, self.cutoff, self.kernels)
        energy = self._energy_chain(torch.cat([h, neutral]), edges,
                                    torch.cat([species, present]))
        return energy[:n] - energy[n:][inverse]

    def _energy_chain(
        self, h: torch.Tensor, edges: EdgeFeatures, species: torch.Tensor
    ) -> torch.Tensor:
        """``[N]`` Σ_t readout_t(h_t) from the embedding ``h`` ``[N, 1, C]``."""
        energy = torch.zeros(h.shape[0], dtype=h.dtype, device=h.device)
        for t, layer in enumerate(self.layers):
            h = layer(h, edges, species)
            if t < len(self.layers) - 1:
                energy = energy + h[:, 0] @ self.readouts[t]
        hidden = tnf.silu(h[:, 0] @ self.readout_w1 + self.readout_b1)
        return energy + hidden @ self.readout_w2


def _validate(backend: str, channels: int, lmax: int, correlation: int, num_layers: int,
              num_knots: int, avg_num_neighbors: float, max_charge: int, max_spin: int,
              grid_oversample: int) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    for name, value, low in (("channels", channels, 1), ("lmax", lmax, 0),
                             ("correlation", correlation, 1), ("num_layers", num_layers, 1),
                             ("num_knots", num_knots, 4), ("max_charge", max_charge, 0),
                             ("max_spin", max_spin, 1), ("grid_oversample", grid_oversample, 0)):
        if int(value) != value or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if not avg_num_neighbors > 0:
        raise ValueError(f"avg_num_neighbors must be positive, got {avg_num_neighbors}")
