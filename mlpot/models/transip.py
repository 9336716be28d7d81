"""`TransIPPotential`: a transformer that learns rotational equivariance.

After "Learning Inter-Atomic Potentials without Explicit Equivariance" (TransIP): one
token per atom, no equivariant layers; rotational symmetry is taught by data
(rotation augmentation) or by a contrastive objective in embedding space
(:mod:`mlpot.models.transip_equivariance`), or imposed exactly at inference by frame
averaging (:mod:`mlpot.models.frames`). The paper's exact sizes are not at hand; the
choices here are stated in :class:`TransIPPotential`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from mlpot.graph import AtomicGraph, system_sum
from mlpot.models.base import Potential, species_to_numbers
from mlpot.models.frames import principal_frames
from mlpot.models.references import SystemReferences, check_charge_spin
from mlpot.models.repulsion import ZBLRepulsion
from mlpot.models.transip_layers import (
    AngularDensity,
    DenseGeometry,
    DistanceBias,
    NeighbourDensity,
    NeighbourPairs,
    RotaryGeometry,
    SparseGeometry,
    TransformerBlock,
)
from mlpot.neighbors import with_neighbors


@dataclass(frozen=True)
class TransIPPotentialConfig:
    """Hyper-parameters of :class:`TransIPPotential` (= its constructor arguments).

    Attributes:
        species: atomic numbers the model accepts.
        cutoff: r_c, Å: attention range in periodic systems (smooth envelope) and the
            range of the radial basis of the distance bias.
        dim: token width d.
        heads: attention heads H (d/H must be even: rotary pairs).
        num_layers: transformer blocks.
        ffn_multiplier: hidden width of the feed-forward as a multiple of d.
        num_radial: radial basis functions of the distance bias.
        head_hidden: hidden width of the per-atom energy MLP.
        min_wavelength, max_wavelength: range of the rotary wavelengths 2π/ω, Å.
        max_charge: |total charge| the charge embedding covers, e.
        max_spin: largest spin multiplicity the spin embedding covers.
        frame_averaging: average the energy over the 4 proper PCA frames (molecules only).
        neighbour_density: add the radial neighbour density
            (:class:`~mlpot.models.transip_layers.NeighbourDensity`) to the input tokens
            (default on; False in checkpoints written before the option existed).
        pair_repulsion: add the ZBL short-range repulsion
            (:class:`~mlpot.models.repulsion.ZBLRepulsion`) to the learned energy.
        system_references: add per-system reference energies of the charge and spin
            states (:class:`~mlpot.models.references.SystemReferences`, fitted with E0
            by ``mlpot train``; default on, off in checkpoints written before the
            option existed).
        neighbour_sum: add a sum over the neighbours within ``cutoff`` to every block
            (:class:`~mlpot.models.transip_layers.NeighbourSum`, distances only).
        learned_rotary: train the rotary wave vectors (directions and frequencies)
            instead of keeping them fixed.
        angular_density: add the power spectrum of the neighbour density
            (:class:`~mlpot.models.transip_layers.AngularDensity`: rotation-invariant
            bond-angle features) to the input tokens.
    """

    species: tuple[int, ...]
    cutoff: float = 5.0
    dim: int = 64
    heads: int = 4
    num_layers: int = 3
    ffn_multiplier: int = 2
    num_radial: int = 16
    head_hidden: int = 64
    min_wavelength: float = 2.0
    max_wavelength: float = 40.0
    max_charge: int = 10
    max_spin: int = 11
    frame_averaging: bool = False
    neighbour_density: bool = True
    pair_repulsion: bool = False
    system_references: bool = True
    neighbour_sum: bool = True
    learned_rotary: bool = True
    angular_density: bool = True


@dataclass(frozen=True)
class TransIPEmbedding:
    """Representations used by the equivariance objectives.

    Attributes:
        atoms: ``[N, d]`` final per-atom features (after the last LayerNorm).
        pooled: ``[B, d]`` mean of ``atoms`` over each system.
    """

    atoms: torch.Tensor
    pooled: torch.Tensor


@dataclass(frozen=True)
class _Packing:
    """Where the atoms of the molecules sit in a padded ``[B_m, n]`` batch."""

    atoms: torch.Tensor  # [M] flat atom indices
    slots: torch.Tensor  # [M] index into the flattened [B_m * n] padded batch
    num_systems: int
    width: int

    @classmethod
    def build(cls, atoms: torch.Tensor, system_index: torch.Tensor) -> _Packing:
        systems = system_index[atoms]
        _, local, counts = torch.unique_consecutive(
            systems, return_inverse=True, return_counts=True
        )
        starts = torch.cumsum(counts, 0) - counts
        width = int(counts.max())
        rank = torch.arange(len(atoms), device=atoms.device) - starts[local]
        return cls(atoms, local * width + rank, len(counts), width)

    def pad(self, values: torch.Tensor) -> torch.Tensor:
        """``[M, ...]`` → ``[B_m, n, ...]`` (zeros in the padding)."""
        out = values.new_zeros((self.num_systems * self.width, *values.shape[1:]))
        return out.index_copy(0, self.slots, values).unflatten(0, (self.num_systems, self.width))

    def unpad(self, values: torch.Tensor) -> torch.Tensor:
        """``[B_m, n, ...]`` → ``[M, ...]``."""
        return values.flatten(0, 1)[self.slots]

    def mask(self, device: torch.device) -> torch.Tensor:
        flat = torch.zeros(self.num_systems * self.width, dtype=torch.bool, device=device)
        return flat.index_fill(0, self.slots, True).view(self.num_systems, self.width)


class TransIPPotential(Potential):
    """Transformer potential with learned (not built-in) rotational equivariance.

    Tokens: h⁰_i = e_species(Z_i) + e_charge(Q) + e_spin(2S+1). Blocks (pre-norm):
    h ← h + Attn(LN h), h ← h + FFN(LN h); per-atom energy ε_i = MLP(LN h_i); the base
    class adds scale/shift and E0 and derives forces and stress by autograd
    (conservative by construction). All functions are smooth (SiLU, LayerNorm, softmax,
    compact C² polynomial bumps, a C² envelope), so finite differences and NVE work.

    Geometry reaches the tokens through attention: 3-D rotary embeddings of relative
    positions on queries, keys and values plus a learned radial distance bias (see
    :mod:`mlpot.models.transip_layers`). Rotary phases depend on the direction of
    r_j − r_i, so an untrained model is not rotation invariant — on purpose. With
    ``neighbour_density=True`` (the default) the input tokens also get the radial
    density of their neighbours within ``cutoff``
    (:class:`~mlpot.models.transip_layers.NeighbourDensity`: distances only, so it adds
    no direction and no hidden equivariance). On the xTB experiment (``python -m
    benchmarks transip-experiment``) it lowered the validation force MAE of the
    ``augment`` model from 542 to 370 meV/Å (1000 structures, 4000 steps of 16).
    Checkpoints written before the option existed load without it
    (:attr:`legacy_config`). ``neighbour_sum=True`` adds to every block
    a sum over the neighbours within ``cutoff`` with learned radial filters
    (:class:`~mlpot.models.transip_layers.NeighbourSum`: distances only, a SchNet-like
    continuous-filter convolution beside the attention, whose softmax only averages).
    ``learned_rotary=True`` trains the rotary wave vectors k = ω u
    (directions and frequencies) from their fixed initial values; it adds 3·d/2
    parameters and no cost. On the 10000-structure xTB cell (augment, 12000 steps,
    ``dim`` 64) it lowered the test force MAE from 152.8 to 144.3 meV/Å; with
    ``neighbour_sum`` (``dim`` 56) and wavelengths 2–40 Å, from 133.0 to 127.9.
    ``angular_density=True`` adds to the input tokens the power
    spectrum of the neighbour density (:class:`~mlpot.models.transip_layers.AngularDensity`:
    learned radial/species channels expanded in spherical harmonics up to l = 3 and
    contracted to rotation invariants, i.e. the bond angles around each atom). Like the
    radial density it is invariant by construction and adds no hidden equivariance: the
    attention still sees directions and has to learn the symmetry. On the same cell
    (augment, 12000 steps, with the three options above) it lowered the test force MAE
    from 127.9 / 131.3 to 98.5 / 100.8 meV/Å (training seeds 0 / 1), and in the
    experiment's 3000-structure cell (4000 steps) from 193.3 to 159.9, 1.16× the
    equivariant model's 138.4. It costs 15–40 % of the energy+forces time.

    - Molecules (no periodic direction): full attention over all atoms of the molecule
      with ``scaled_dot_product_attention`` on a padded batch; padded keys are masked,
      so a batch of mixed sizes equals one-by-one evaluation. Coordinates are centred
      per molecule; rotary phases use the centred positions. Cost O(n²) per molecule.
    - Periodic systems (any periodic direction): attention over the neighbour pairs
      within ``cutoff`` from the graph's ``edge_index``/``shifts`` (every image within
      r_c, which is the minimum image when r_c is below half the cell width), with the
      smooth envelope on the attention weights. The energy is a sum of local terms
      (receptive field num_layers·r_c), hence extensive, and continuous when a
      neighbour crosses r_c. Full attention over a cell would not be extensive and
      would see the arbitrary cell choice.

    ``frame_averaging=True`` (molecules only; a periodic system raises ``ValueError``):
    the energy is averaged over the 4 proper PCA frames (:mod:`mlpot.models.frames`),
    exactly SO(3)-invariant with equivariant forces. Cost: 4 evaluations (a batch of 4
    rotated copies); measured on one CPU thread, float32, energy+forces, default
    sizes: 1.6× the plain model's time at 20 atoms, 2.5× at 100, 4.1× at 500 (the four
    copies' n² pair tensors no longer fit in cache), see ``python -m benchmarks
    transip``.
    It is not smooth where the covariance spectrum is degenerate (see the frames
    module: finite there, invariant only for linear molecules and single atoms).

    Defaults: all four token/block options on (``neighbour_density``,
    ``neighbour_sum``, ``learned_rotary``, ``angular_density``; each lowered the test
    force error in the xTB experiment, which runs them at d = 56 to match its
    equivariant model's size; see ``docs/transip.md``), d = 64, 4 heads of 16 (8 rotary
    pairs each), 3 blocks, FFN 2d, 16 radial functions, rotary wavelengths 2–40 Å (bond
    lengths to molecular size), 5 Å: 0.154 M parameters for H/C/N/O, against the
    :class:`~mlpot.models.EquivariantPotential` default's 0.189 M, the model it is
    compared with (``python -m benchmarks transip``). Width beyond 64 did not help
    there (best validation force MAE at 10000 structures, 12000 steps, without the
    options: d = 96 with 6 heads 162.7 meV/Å, d = 64 166.5 / 159.1 over two seeds).
    Until 2026-12-02 the defaults were d = 96, 6 heads, wavelengths 1–20 Å and only
    the radial density (0.247 M); checkpoints written before an option existed load
    without it (:attr:`legacy_config`).
    """

    config: TransIPPotentialConfig
    # checkpoints written before an option existed lack its key: build them without it
    legacy_config: ClassVar[dict[str, Any]] = {
        "neighbour_density": False,
        "system_references": False,
        "neighbour_sum": False,
        "learned_rotary": False,
        "angular_density": False,
    }

    def __init__(
        self,
        species: Sequence[int | str],
        cutoff: float = 5.0,
        dim: int = 64,
        heads: int = 4,
        num_layers: int = 3,
        ffn_multiplier: int = 2,
        num_radial: int = 16,
        head_hidden: int = 64,
        min_wavelength: float = 2.0,
        max_wavelength: float = 40.0,
        max_charge: int = 10,
        max_spin: int = 11,
        frame_averaging: bool = False,
        neighbour_density: bool = True,
        pair_repulsion: bool = False,
        system_references: bool = True,
        neighbour_sum: bool = True,
        learned_rotary: bool = True,
        angular_density: bool = True,
    ) -> None:
        super().__init__(species, cutoff)
        _validate(
            dim,
            heads,
            num_layers,
            ffn_multiplier,
            num_radial,
            head_hidden,
            min_wavelength,
            max_wavelength,
            max_charge,
            max_spin,
        )
        self.config = TransIPPotentialConfig(
            species=tuple(species_to_numbers(species)),
            cutoff=float(cutoff),
            dim=int(dim),
            heads=int(heads),
            num_layers=int(num_layers),
            ffn_multiplier=int(ffn_multiplier),
            num_radial=int(num_radial),
            head_hidden=int(head_hidden),
            min_wavelength=float(min_wavelength),
            max_wavelength=float(max_wavelength),
            max_charge=int(max_charge),
            max_spin=int(max_spin),
            frame_averaging=bool(frame_averaging),
            neighbour_density=bool(neighbour_density),
            pair_repulsion=bool(pair_repulsion),
            system_references=bool(system_references),
            neighbour_sum=bool(neighbour_sum),
            learned_rotary=bool(learned_rotary),
            angular_density=bool(angular_density),
        )
        if pair_repulsion:
            self.repulsion = ZBLRepulsion(self.config.species, self.cutoff)
        if system_references:
            self.system_references = SystemReferences(max_charge, max_spin)
        self.species_embedding = nn.Parameter(torch.randn(len(self.config.species), dim))
        self.charge_embedding = nn.Parameter(0.5 * torch.randn(2 * max_charge + 1, dim))
        self.spin_embedding = nn.Parameter(0.5 * torch.randn(max_spin, dim))
        self.rotary = RotaryGeometry(
            heads, dim // heads // 2, min_wavelength, max_wavelength, learned_rotary
        )
        self.distance_bias = DistanceBias(num_layers, heads, num_radial, self.cutoff)
        self.density = (
            NeighbourDensity(len(self.config.species), dim, num_radial, self.cutoff)
            if neighbour_density
            else None
        )
        self.angular = (
            AngularDensity(len(self.config.species), dim, num_radial, self.cutoff)
            if angular_density
            else None
        )
        self.sum_basis = None
        if neighbour_sum:  # only the basis of this DistanceBias is used
            self.sum_basis = DistanceBias(1, 1, num_radial, self.cutoff)
            self.sum_basis.weight.requires_grad_(False)
        self.blocks = nn.ModuleList(
            TransformerBlock(dim, heads, ffn_multiplier, layer, num_radial if neighbour_sum else 0)
            for layer in range(num_layers)
        )
        self.final_norm = nn.LayerNorm(dim)
        self.energy_head = nn.Sequential(
            nn.Linear(dim, head_hidden), nn.SiLU(), nn.Linear(head_hidden, 1)
        )

    # ----------------------------------------------------------------- public
    def atomic_energies(
        self, graph: AtomicGraph, edge_vectors: torch.Tensor, species: torch.Tensor
    ) -> torch.Tensor:
        """Per-atom energies ``[N]`` (eV, before scale/shift and E0)."""
        tokens = self._tokens(graph, species, edge_vectors)
        molecules, periodic = self._split(graph)
        energies = tokens.new_zeros(graph.num_atoms)
        if len(molecules):
            packing, features = self._molecule_features(
                graph, tokens, molecules, self.config.frame_averaging, edge_vectors
            )
            frame_energies = self.energy_head(features).squeeze(-1)  # [B_m·G, n]
            per_frame = frame_energies.unflatten(0, (packing.num_systems, -1))
            energies = energies.index_copy(0, molecules, packing.unpad(per_frame.mean(1)))
        if len(periodic):
            features = self._periodic_features(graph, tokens, periodic, edge_vectors)
            energies = energies.index_copy(0, periodic, self.energy_head(features).squeeze(-1))
        return energies

    def embed(self, graph: AtomicGraph) -> TransIPEmbedding:
        """Per-atom and pooled representations of the network (without frame averaging:
        these are what the equivariance objectives shape), differentiable in the weights.
        """
        if graph.dtype != self.dtype or graph.device != self.e0.device:
            graph = graph.to(self.e0.device, self.dtype)
        species = self.species_index(graph)
        molecules, periodic = self._split(graph)
        vectors = None  # edge vectors: needed by periodic systems, the density and the sum
        if len(periodic) or self._needs_pairs:
            if graph.edge_index is None:
                graph = with_neighbors(graph, self.cutoff)
            assert graph.edge_index is not None and graph.shifts is not None  # built above
            i, j = graph.edge_index
            vectors = graph.positions[j] - graph.positions[i] + graph.shifts
        tokens = self._tokens(graph, species, vectors)
        features = tokens.new_zeros(tokens.shape)
        if len(molecules):
            packing, packed = self._molecule_features(graph, tokens, molecules, False, vectors)
            features = features.index_copy(0, molecules, packing.unpad(packed))
        if len(periodic):
            assert vectors is not None  # built above
            features = features.index_copy(
                0, periodic, self._periodic_features(graph, tokens, periodic, vectors)
            )
        counts = graph.atoms_per_system.clamp_min(1).to(features.dtype)
        pooled = system_sum(features, graph.system_index, graph.num_systems) / counts[:, None]
        return TransIPEmbedding(atoms=features, pooled=pooled)

    # --------------------------------------------------------------- internals
    def _tokens(
        self, graph: AtomicGraph, species: torch.Tensor, edge_vectors: torch.Tensor | None
    ) -> torch.Tensor:
        """``[N, d]`` species + charge + spin embeddings (+ the neighbour density, from the
        graph's edges and their vectors ``[E, 3]``, Å)."""
        c = self.config
        _check_charge_spin(graph, c.max_charge, c.max_spin)
        per_system = (
            self.charge_embedding[graph.charge + c.max_charge] + self.spin_embedding[graph.spin - 1]
        )
        tokens = self.species_embedding[species] + per_system[graph.system_index]
        if self.density is None and self.angular is None:
            return tokens
        assert graph.edge_index is not None and edge_vectors is not None  # callers build them
        if self.density is not None:
            distance = edge_vectors.norm(dim=1)  # neighbour pairs: never a self pair
            tokens = tokens + self.density(graph.num_atoms, graph.edge_index, distance, species)
        if self.angular is not None:
            tokens = tokens + self.angular(graph.num_atoms, graph.edge_index, edge_vectors, species)
        return tokens

    @property
    def _needs_pairs(self) -> bool:
        """Whether molecules need the graph's neighbour pairs too (input densities or
        the neighbour sum)."""
        return self.density is not None or self.angular is not None or self.sum_basis is not None

    def _split(self, graph: AtomicGraph) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat indices of the atoms of molecules and of periodic systems."""
        periodic_atom = graph.pbc.any(dim=1)[graph.system_index]
        periodic = periodic_atom.nonzero().squeeze(1)
        if len(periodic) and self.config.frame_averaging:
            b = int(graph.system_index[periodic[0]])
            raise ValueError(
                f"system {b} is periodic (pbc={graph.pbc[b].tolist()}): frame_averaging is "
                "defined for molecules only (PCA frames of a periodic cell depend on how "
                "atoms are wrapped); use a model with frame_averaging=False"
            )
        return (~periodic_atom).nonzero().squeeze(1), periodic

    def _molecule_features(
        self,
        graph: AtomicGraph,
        tokens: torch.Tensor,
        atoms: torch.Tensor,
        frame_average: bool,
        edge_vectors: torch.Tensor | None,
    ) -> tuple[_Packing, torch.Tensor]:
        """Padded final features ``[B_m·G, n, d]`` (G = 4 frames or 1) of the molecules
        (``edge_vectors [E, 3]`` of the graph's pairs: needed with ``neighbour_sum``)."""
        packing = _Packing.build(atoms, graph.system_index)
        mask = packing.mask(tokens.device)
        positions = packing.pad(graph.positions[atoms])
        count = mask.sum(1, keepdim=True).to(positions.dtype)
        centred = positions - positions.sum(1, keepdim=True) / count[..., None]
        centred = centred * mask[..., None]
        x = packing.pad(tokens[atoms])
        if frame_average:
            rotations = principal_frames(centred, mask).rotations  # [B, G, 3, 3]
            frames = rotations.shape[1]
            centred = torch.einsum("bni,bgij->bgnj", centred, rotations).flatten(0, 1)
            x = x.repeat_interleave(frames, dim=0)
            mask = mask.repeat_interleave(frames, dim=0)
        copies = x.shape[0] // packing.num_systems
        pairs = self._molecule_pairs(graph, edge_vectors, packing, copies)
        geometry = DenseGeometry.build(centred, mask, self.rotary, self.distance_bias, pairs)
        for block in self.blocks:
            x = block(x, geometry)
        return packing, self.final_norm(x)

    def _molecule_pairs(
        self,
        graph: AtomicGraph,
        edge_vectors: torch.Tensor | None,
        packing: _Packing,
        copies: int,
    ) -> NeighbourPairs | None:
        """The graph's pairs between molecule atoms in the padded layout of
        ``copies`` copies per molecule (copy g of molecule b is row b·G + g); None
        without ``neighbour_sum``."""
        if self.sum_basis is None:
            return None
        if graph.edge_index is None or edge_vectors is None:
            raise ValueError("neighbour_sum needs the graph's neighbour pairs")
        slot = torch.full((graph.num_atoms,), -1, dtype=torch.int64, device=packing.atoms.device)
        slot[packing.atoms] = packing.slots
        i, j = graph.edge_index
        keep = slot[i] >= 0  # pairs never join two systems
        width = packing.width
        centres, neighbours = slot[i[keep]], slot[j[keep]]
        rows = (centres // width)[None] * copies + torch.arange(copies, device=slot.device)[:, None]
        return NeighbourPairs.build(
            (rows * width + (centres % width)[None]).flatten(),
            (rows * width + (neighbours % width)[None]).flatten(),
            edge_vectors[keep].norm(dim=1).repeat(copies),
            self.sum_basis,
        )

    def _periodic_features(
        self,
        graph: AtomicGraph,
        tokens: torch.Tensor,
        atoms: torch.Tensor,
        edge_vectors: torch.Tensor,
    ) -> torch.Tensor:
        """Final features ``[P, d]`` of the atoms of periodic systems (neighbour attention)."""
        local = torch.full((graph.num_atoms,), -1, dtype=torch.int64, device=atoms.device)
        local[atoms] = torch.arange(len(atoms), device=atoms.device)
        assert graph.edge_index is not None  # the caller built the neighbour list
        centre_local = local[graph.edge_index[0]]
        keep = centre_local >= 0
        edges = torch.stack([centre_local[keep], local[graph.edge_index[1][keep]]])
        geometry = SparseGeometry.build(
            len(atoms),
            edges,
            edge_vectors[keep],
            self.cutoff,
            self.rotary,
            self.distance_bias,
            self.sum_basis,
        )
        x = tokens[atoms]
        for block in self.blocks:
            x = block(x, geometry)
        return self.final_norm(x)


def _check_charge_spin(graph: AtomicGraph, max_charge: int, max_spin: int) -> None:
    """Range of charge/spin; for molecules also electron count vs multiplicity.

    A molecule with N_e = ΣZ − Q electrons and multiplicity 2S+1 needs
    2S ≤ N_e and 2S ≡ N_e (mod 2). Periodic cells are not checked for parity (labels
    of metals usually carry no spin).
    """
    charge, spin = graph.charge, graph.spin
    check_charge_spin(charge, spin, max_charge, max_spin)
    protons = system_sum(graph.atomic_numbers.to(charge.dtype), graph.system_index, len(charge))
    electrons = protons - charge
    unpaired = spin - 1
    molecule = ~graph.pbc.any(dim=1)
    bad = molecule & ((electrons < 0) | (unpaired > electrons) | ((electrons - unpaired) % 2 != 0))
    if bool(bad.any()):
        b = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"system {b}: charge {int(charge[b])} and spin multiplicity {int(spin[b])} are "
            f"impossible for {int(electrons[b])} electrons (multiplicity 2S+1 needs 2S <= "
            "N_e and 2S of the same parity as N_e); set atoms.info['charge'] / ['spin']"
        )


def _validate(
    dim: int,
    heads: int,
    num_layers: int,
    ffn_multiplier: int,
    num_radial: int,
    head_hidden: int,
    min_wavelength: float,
    max_wavelength: float,
    max_charge: int,
    max_spin: int,
) -> None:
    for name, value, low in (
        ("dim", dim, 2),
        ("heads", heads, 1),
        ("num_layers", num_layers, 1),
        ("ffn_multiplier", ffn_multiplier, 1),
        ("num_radial", num_radial, 2),
        ("head_hidden", head_hidden, 1),
        ("max_charge", max_charge, 0),
        ("max_spin", max_spin, 1),
    ):
        if int(value) != value or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if dim % heads or (dim // heads) % 2:
        raise ValueError(
            f"dim/heads must be an even integer (rotary pairs), got dim={dim}, heads={heads}"
        )
    if not 0 < min_wavelength <= max_wavelength:
        raise ValueError(
            f"need 0 < min_wavelength <= max_wavelength, got {min_wavelength}, {max_wavelength}"
        )
