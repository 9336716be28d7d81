"""TransIPPotential: symmetry, smoothness, frames, equivariance objectives, I/O (float64)."""

import ase
import ase.build
import numpy as np
import pytest
import torch

from mlpot import AtomicGraph, MLPotCalculator, load_model, save_model
from mlpot.md import ForceField, MDState, VelocityVerlet, maxwell_boltzmann
from mlpot.models import LennardJones, TransIPPotential
from mlpot.models.frames import principal_frames
from mlpot.models.transip_equivariance import (
    ContrastiveConfig,
    RotationConditionedTransform,
    augment,
    contrastive_loss,
    contrastive_objective,
    equivariance_error,
    random_rotations,
    rotate_graph,
)
from mlpot.testing import (
    assert_batched_equals_single,
    assert_equivariant,
    assert_extensive,
    assert_forces_match_finite_differences,
    assert_stress_matches_finite_differences,
    random_rotation,
)

SPECIES = ["H", "C", "N", "O"]
#: The class defaults of the token/block options (``small_model`` turns all but the
#: radial density off).
DEFAULT_OPTIONS = {"neighbour_density": True, "neighbour_sum": True, "learned_rotary": True,
                   "angular_density": True}
#: The architectures every symmetry/smoothness test runs on: the plain transformer, the
#: one whose tokens start with the radial neighbour density, that one with a neighbour
#: sum in every block, that one with learned rotary wave vectors, and the class default
#: (all of these plus the angular density, the bond-angle power spectrum, in its tokens).
ARCHITECTURES = pytest.mark.parametrize(
    "arch",
    [
        {"neighbour_density": False},
        {"neighbour_density": True},
        {"neighbour_density": True, "neighbour_sum": True},
        {"neighbour_density": True, "learned_rotary": True},
        DEFAULT_OPTIONS,
    ],
    ids=["plain", "density", "sum", "learned", "default"],
)


def small_model(**kwargs) -> TransIPPotential:
    """A small float64 model; only the options named in ``kwargs`` are on (the radial
    density aside), so each test states what it runs on."""
    size = {
        "dim": 16,
        "heads": 2,
        "num_layers": 2,
        "num_radial": 8,
        "head_hidden": 16,
        "cutoff": 3.0,
        "neighbour_sum": False,
        "learned_rotary": False,
        "angular_density": False,
    }
    return TransIPPotential(SPECIES, **{**size, **kwargs}).double()


def molecule(name: str, seed: int = 1) -> ase.Atoms:
    atoms = ase.build.molecule(name)
    atoms.rattle(0.05, seed=seed)
    return atoms


def diamond() -> ase.Atoms:
    """Rattled 2-atom diamond cell with one N (triclinic primitive cell)."""
    atoms = ase.build.bulk("C", "diamond", a=3.57)
    atoms.numbers[1] = 7
    atoms.rattle(0.05, seed=3)
    return atoms


def predict(model, structures, stress=False):
    graph = AtomicGraph.from_atoms(structures, dtype=torch.float64, read_labels=False)
    return model(graph, compute_stress=stress)


# ----------------------------------------------------------------- symmetries
@ARCHITECTURES
def test_translation_and_permutation_invariance_exact(arch):
    """Centred coordinates and relative rotary phases each make translations exact.
    Mutants: centring dropped AND rotary phases on queries only (absolute positions reach
    the scores) → translation fails (either change alone passes, as it should); a
    channel-dependent embedding of each atom's rank in the padded batch → permutation
    fails."""
    model = small_model(**arch)
    rng = np.random.default_rng(0)
    systems = [molecule("CH3CH2OH"), diamond().repeat((2, 1, 1)), molecule("HCOOH")]
    moved, perms = [], []
    for atoms in systems:
        perm = rng.permutation(len(atoms))
        shifted = atoms.copy()
        shifted.positions += rng.normal(scale=3.0, size=3)
        moved.append(shifted[perm])
        perms.append(perm)
    ref, out = predict(model, systems), predict(model, moved)
    assert torch.allclose(out.energy, ref.energy, rtol=1e-12, atol=0)
    starts = np.cumsum([0] + [len(a) for a in systems])
    expected = torch.cat(
        [
            ref.forces[s : s + len(p)][torch.as_tensor(p)]
            for s, p in zip(starts, perms, strict=False)
        ]
    )
    assert float((out.forces - expected).abs().max()) < 1e-12 * float(ref.forces.abs().max())


@ARCHITECTURES
def test_untrained_model_is_measurably_not_rotation_invariant(arch):
    """No hidden equivariance: one random rotation changes energies and forces at O(1)
    of their variation. Mutant: rotary phases of |r| instead of u·r (a rotation-invariant
    model) → both errors drop to ~1e-16 and the test fails."""
    model = small_model(**arch)
    graph = AtomicGraph.from_atoms(
        [molecule("CH3CH2OH"), molecule("NH3"), diamond()], dtype=torch.float64
    )
    err = equivariance_error(model, graph, torch.Generator().manual_seed(0))
    assert err.forces > 1e-2, err
    assert err.energy > 1e-4, err
    fa = small_model(**arch, frame_averaging=True)
    mols = AtomicGraph.from_atoms([molecule("CH3CH2OH"), molecule("NH3")], dtype=torch.float64)
    exact = equivariance_error(fa, mols, torch.Generator().manual_seed(0))
    assert exact.forces < 1e-10 and exact.energy < 1e-12, exact


# ------------------------------------------------------------ forces, stress
@ARCHITECTURES
def test_forces_match_finite_differences_molecule_and_frames(arch):
    """Mutant: distances of the distance bias detached → forces wrong (err ~1e-1)."""
    mol = molecule("CH3CH2OH")
    mol.info["charge"], mol.info["spin"] = 1, 2
    assert assert_forces_match_finite_differences(small_model(**arch), mol) < 1e-6
    assert (
        assert_forces_match_finite_differences(small_model(**arch, frame_averaging=True), mol)
        < 1e-6
    )


@ARCHITECTURES
def test_forces_and_stress_match_finite_differences_periodic(arch):
    """Mutant: the strained edge vectors ignored (positions[j] − positions[i] without
    shifts) → stress and forces fail."""
    model = small_model(**arch)
    cell = diamond()
    assert assert_forces_match_finite_differences(model, cell) < 1e-6
    assert assert_stress_matches_finite_differences(model, cell) < 1e-6


@ARCHITECTURES
def test_periodic_energy_continuous_when_a_neighbour_crosses_the_cutoff(arch):
    """Two atoms in a large periodic box, scanned across r_c. Mutant: envelope replaced
    by the hard step (r < r_c) → the energy jumps at r_c (the test sees a 1e-2 jump)."""
    model = small_model(**arch)
    rc = model.cutoff
    rs = np.array([rc - 1e-3, rc - 1e-6, rc + 1e-6, rc + 1e-3, rc + 0.5])
    structures = [
        ase.Atoms(
            "CO", positions=[[0, 0, 0], [0.8 * r, 0.36 * r, 0.48 * r]], cell=[12, 12, 12], pbc=True
        )
        for r in rs
    ]
    out = predict(model, structures)
    e = out.energy.numpy() - float(out.energy[-1])
    f = out.forces.numpy()[1::2]
    assert np.abs(e[2:]).max() < 1e-14, "a pair beyond the cutoff changed the energy"
    assert abs(e[1]) < 1e-12 and np.abs(f[1]).max() < 1e-9, "jump at the cutoff"
    # C²: approaching from below, E − E_far ∝ (r_c − r)³ and F ∝ (r_c − r)²
    assert abs(e[0]) < 1e-6 and np.abs(f[0]).max() < 1e-3
    assert abs(e[0]) > 0, "the pair inside the cutoff must interact"


def test_force_loss_gradient_matches_finite_differences():
    """Force training needs double backward (create_graph) through dense, frame-averaged
    (custom eigh backward) and sparse attention: d(Σ F²)/dθ by autograd equals central
    differences in a weight θ. Mutant: the eigh backward made constant in its incoming
    gradient (V̄ detached) → the frame-averaged case fails. (Detaching the saved V, λ
    instead changes nothing here, correctly: they do not depend on θ.)"""
    for model, structures in (
        (small_model(), [molecule("NH3"), diamond()]),
        (small_model(frame_averaging=True), [molecule("HCOOH")]),
    ):
        graph = AtomicGraph.from_atoms(structures, dtype=torch.float64)
        weight = model.blocks[0].qkv.weight

        def force_loss(model=model, graph=graph):
            return model(graph, training=True).forces.square().sum()

        (grad,) = torch.autograd.grad(force_loss(), weight)
        step, fd = 1e-5, []
        for index in ((0, 0), (5, 3), (20, 7)):
            with torch.no_grad():
                weight[index] += step
            plus = float(force_loss().detach())
            with torch.no_grad():
                weight[index] -= 2 * step
            minus = float(force_loss().detach())
            with torch.no_grad():
                weight[index] += step
            fd.append(((plus - minus) / (2 * step), float(grad[index])))
        fd = np.array(fd)
        assert np.abs(fd[:, 0] - fd[:, 1]).max() < 1e-6 * max(np.abs(fd).max(), 1e-3), fd


# ------------------------------------------------------------ frame averaging
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_frame_averaging_exactly_invariant(seed):
    """Energy invariant to 1e-10, forces equivariant to 1e-8 (rotation + translation +
    permutation). Mutants: only the identity frame (no sign average) → 1e-2 errors;
    det(V) not fixed (improper frames for some inputs) → fails for some rotations."""
    model = small_model(frame_averaging=True)
    e_err, f_err = assert_equivariant(model, molecule("CH3CH2OH", seed), seed=seed, rtol=1e-8)
    assert e_err < 1e-10
    assert f_err < 1e-8


def test_frame_averaging_on_degenerate_covariance():
    """Chosen behaviour where the covariance spectrum is degenerate:

    - linear CO₂ (two zero eigenvalues): finite, still exactly invariant, forces equal
      finite differences (the arbitrary axes do not enter X·V);
    - CH₄ at T_d (three equal eigenvalues): finite energy and forces, gap reported as ~0
      (the frame is arbitrary: invariance is not promised there);
    - CH₄ slightly distorted: invariant again.

    Mutant: ``torch.linalg.eigh`` instead of the gap-guarded eigh → NaN forces.
    """
    model = small_model(frame_averaging=True)
    co2 = ase.Atoms("CO2", positions=[[0, 0, 0], [0, 0, 1.16], [0, 0, -1.19]])
    co2.rotate(37, "x")
    out = predict(model, co2)
    assert bool(torch.isfinite(out.forces).all())
    e_err, _ = assert_equivariant(model, co2, seed=4, rtol=1e-8)
    assert e_err < 1e-10
    assert assert_forces_match_finite_differences(model, co2) < 1e-6

    methane = ase.build.molecule("CH4")
    graph = AtomicGraph.from_atoms(methane, dtype=torch.float64)
    centred = graph.positions - graph.positions.mean(0)
    frames = principal_frames(centred[None], torch.ones(1, 5, dtype=torch.bool))
    assert float(frames.relative_gap[0]) < 1e-10
    out = model(graph)
    assert bool(torch.isfinite(out.energy).all()) and bool(torch.isfinite(out.forces).all())

    distorted = methane.copy()
    distorted.positions[1] *= 1.05
    distorted.positions[2] *= 0.97
    e_err, _ = assert_equivariant(model, distorted, seed=5, rtol=1e-8)
    assert e_err < 1e-10


def test_frame_averaging_rejects_periodic_systems():
    with pytest.raises(ValueError, match=r"system 1 is periodic.*frame_averaging"):
        predict(small_model(frame_averaging=True), [molecule("NH3"), diamond()])


# ------------------------------------------------------------ batching, extensivity
@ARCHITECTURES
def test_mixed_size_batch_equals_one_by_one(arch):
    """Mutant: padding keys not masked (key_mask zeros) → batched != single."""
    structures = [molecule("CH3CH2OH"), molecule("H2O"), diamond(), molecule("HCN")]
    assert assert_batched_equals_single(small_model(**arch), structures, rtol=1e-10) < 1e-10
    assert (
        assert_batched_equals_single(
            small_model(**arch, frame_averaging=True),
            [structures[0], structures[1], structures[3]],
            rtol=1e-10,
        )
        < 1e-10
    )
    # atoms without a single neighbour within the cutoff (empty pair lists): alone, in
    # a batch of such atoms, and beside molecules with pairs
    lone = ase.Atoms("C", positions=[[0.0, 0.0, 0.0]])
    far = ase.Atoms("CO", positions=[[0.0, 0.0, 0.0], [8.0, 0.0, 0.0]])
    for batch in ([lone], [lone, far], [lone, structures[0], far]):
        assert assert_batched_equals_single(small_model(**arch), batch, rtol=1e-10) < 1e-10


@ARCHITECTURES
def test_periodic_energy_is_extensive(arch):
    """Mutant: full attention over the cell (dense path for periodic systems) → the
    2×2×2 supercell energy is not 8× the cell energy."""
    assert assert_extensive(small_model(**arch), diamond(), rtol=1e-10) < 1e-10
    assert (
        assert_extensive(small_model(**arch, cutoff=2.0), diamond(), repeat=(3, 1, 2), rtol=1e-10)
        < 1e-10
    )


# ------------------------------------------------------------ equivariance training
def test_rotate_graph_rotates_labels_consistently():
    """Labels of a rotated periodic graph = an exactly invariant model's predictions
    there (LJ): forces R F, stress R σ Rᵀ. Mutant: stress rotated as Rᵀ σ R → fails."""
    lj = LennardJones(["C", "N"], epsilon=0.01, sigma=2.0, cutoff=4.0).double()
    cell = diamond().repeat(2)
    graph = AtomicGraph.from_atoms(cell, dtype=torch.float64)
    ref = lj(graph, compute_stress=True)
    labelled = graph.replace(energy=ref.energy, forces=ref.forces, stress=ref.stress)
    turned = augment(labelled, torch.Generator().manual_seed(3))
    out = lj(turned.replace(edge_index=None, shifts=None), compute_stress=True)
    assert torch.allclose(out.energy, turned.energy, rtol=1e-12)
    assert float((out.forces - turned.forces).abs().max()) < 1e-12
    assert float((out.stress - turned.stress).abs().max()) < 1e-12
    rotations = random_rotations(4, torch.Generator().manual_seed(0))
    eye = torch.eye(3, dtype=torch.float64).expand(4, 3, 3)
    assert torch.allclose(rotations @ rotations.transpose(1, 2), eye, atol=1e-14)
    assert torch.allclose(torch.linalg.det(rotations), torch.ones(4, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"rotate_graph needs \[1, 3, 3\]"):
        rotate_graph(graph, rotations)


def _contrastive_batch():
    names = ("H2O", "CH4", "CH3CH2OH", "NH3", "HCOOH", "CH3OH", "C2H4", "HCN")
    return AtomicGraph.from_atoms([molecule(n) for n in names], dtype=torch.float64)


@pytest.mark.parametrize("level", ["system", "atoms"])
def test_contrastive_loss_decreases_without_collapse(level):
    """A few Adam steps on a fixed batch (fixed rotations) lower the loss; the spread of
    the embeddings stays above the floor all along (``atoms``: 24 of the batch's 41
    atoms as anchors). Mutant: gradients blocked from the rotated branch (its embedding
    detached) → the loss does not halve."""
    model = small_model(dim=32, heads=4)
    graph = _contrastive_batch()
    transform = RotationConditionedTransform(32).double()
    config = ContrastiveConfig(variance_floor=0.1, level=level, max_anchors=24)
    opt = torch.optim.Adam([*model.parameters(), *transform.parameters()], lr=3e-3)
    losses, spreads = [], []
    for _ in range(30):
        out = contrastive_loss(model, transform, graph, config, torch.Generator().manual_seed(0))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(float(out.loss.detach()))
        spreads.append(float(out.spread))
    print(f"contrastive loss {losses[0]:.3f} -> {losses[-1]:.3f}, min spread {min(spreads):.3f}")
    assert losses[-1] < 0.2 * losses[0], losses
    assert min(spreads) > config.variance_floor, spreads
    embedding = model.embed(graph)
    assert embedding.atoms.shape == (graph.num_atoms, 32)
    assert embedding.pooled.shape == (graph.num_systems, 32)


def test_atom_level_pairs_each_atom_with_its_system_rotation():
    """``level="atoms"``: anchors are a random subset of the batch's atoms, each scored
    with the rotation of its own structure. Built by hand from the same generator draws,
    the objective must match. Mutants: every atom given the first structure's rotation
    → fails; anchors not subsampled (all 41 atoms) → fails."""
    model = small_model(dim=32, heads=4)
    graph = _contrastive_batch()
    transform = RotationConditionedTransform(32).double()
    torch.nn.init.normal_(transform.net[-1].weight, std=0.3)  # T must depend on R
    config = ContrastiveConfig(level="atoms", max_anchors=24)
    out = contrastive_loss(model, transform, graph, config, torch.Generator().manual_seed(5))
    gen = torch.Generator().manual_seed(5)
    rotations = random_rotations(graph.num_systems, gen, torch.float64)
    plain = model.embed(graph).atoms
    turned = model.embed(rotate_graph(graph, rotations)).atoms
    anchors = torch.randperm(graph.num_atoms, generator=gen)[:24]
    expected = contrastive_objective(
        plain[anchors],
        turned[anchors],
        rotations[graph.system_index][anchors],
        transform,
        config,
        gen,
    )
    assert torch.allclose(out.loss, expected.loss, rtol=1e-12)
    pooled = contrastive_loss(
        model, transform, graph, ContrastiveConfig(), torch.Generator().manual_seed(5)
    )
    assert not torch.allclose(out.loss, pooled.loss)


def test_variance_floor_penalises_collapse():
    """Collapsed embeddings pay the floor γ; spread ones pay nothing; one gradient step on
    the loss spreads nearly collapsed embeddings. Mutants: hinge flipped
    (max(0, std − γ)) → fails; variance_weight ignored → fails."""
    gen = torch.Generator().manual_seed(0)
    transform = RotationConditionedTransform(16).double()
    config = ContrastiveConfig(variance_floor=0.5, variance_weight=1.0, rotation_negatives=0)
    rotations = random_rotations(8, gen)
    spread = 3 * torch.randn(8, 16, generator=gen, dtype=torch.float64)
    out = contrastive_objective(spread, spread, rotations, transform, config)
    assert float(out.variance_penalty) == 0.0
    collapsed = torch.ones(8, 16, dtype=torch.float64)
    out = contrastive_objective(collapsed, collapsed, rotations, transform, config)
    assert abs(float(out.variance_penalty) - 0.5) < 1e-3
    assert float((out.loss - out.info_nce).detach()) > 0.49
    nearly = (collapsed + 1e-3 * spread).requires_grad_(True)
    weightless = ContrastiveConfig(variance_floor=0.5, variance_weight=0.0, rotation_negatives=0)
    (grad,) = torch.autograd.grad(
        contrastive_objective(nearly, nearly, rotations, transform, config).loss
        - contrastive_objective(nearly, nearly, rotations, transform, weightless).loss,
        nearly,
    )
    stepped = nearly.detach() - grad
    assert float(stepped.std(0).mean()) > 1.5 * float(nearly.detach().std(0).mean())


def test_rotation_negatives_block_invariant_collapse():
    """A few Adam steps on a fixed batch (fixed rotations) lower the loss 5×; the spread of
    the embeddings stays above the floor all along. Mutant: both embeddings detached
    (only T trains) → the loss stalls above the bound."""
    gen = torch.Generator().manual_seed(0)
    invariant = torch.randn(8, 16, generator=gen, dtype=torch.float64)
    transform = RotationConditionedTransform(16).double()
    opt = torch.optim.Adam(transform.parameters(), lr=1e-2)
    guarded = ContrastiveConfig(rotation_negatives=2)
    for _ in range(40):
        rotations = random_rotations(8, gen)
        out = contrastive_objective(invariant, invariant, rotations, transform, guarded, gen)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    final = [
        float(
            contrastive_objective(
                invariant, invariant, random_rotations(8, gen), transform, guarded, gen
            ).info_nce.detach()
        )
        for _ in range(10)
    ]
    assert np.mean(final) > 0.8 * np.log(3), final
    free = contrastive_objective(
        invariant,
        invariant,
        random_rotations(8, gen),
        RotationConditionedTransform(16).double(),
        ContrastiveConfig(rotation_negatives=0),
        gen,
    )
    assert float(free.info_nce.detach()) < 0.1


# ------------------------------------------------------------ I/O, adapters, errors
@ARCHITECTURES
def test_checkpoint_round_trip(tmp_path, arch):
    model = small_model(**arch, frame_averaging=True)
    model.set_reference_energies({"H": -13.6, "C": -1029.0, "N": -1485.0, "O": -2041.0})
    path = save_model(model, tmp_path / "transip.pt")
    loaded = load_model(path)
    assert type(loaded) is TransIPPotential
    assert loaded.config == model.config
    a, b = predict(model, molecule("CH3CH2OH")), predict(loaded, molecule("CH3CH2OH"))
    assert torch.equal(a.energy, b.energy)
    assert torch.equal(a.forces, b.forces)


@pytest.mark.parametrize("option", sorted(DEFAULT_OPTIONS))
def test_checkpoint_from_before_an_option_loads_without_it(tmp_path, option):
    """A checkpoint written before an option existed (its config lacks the key)
    rebuilds the architecture without it, with the same energies, although new models
    have it by default. Mutant: dropping the key from ``legacy_config`` → the model is
    rebuilt with the option on and its weights do not load."""
    assert getattr(TransIPPotential(SPECIES, dim=16, heads=2, num_layers=1).config, option)
    model = small_model(**{option: False})
    path = save_model(model, tmp_path / "transip.pt")
    payload = torch.load(path, weights_only=True)
    del payload["config"][option]
    torch.save(payload, path)
    loaded = load_model(path)
    assert not getattr(loaded.config, option)
    assert torch.equal(predict(model, molecule("CH3CH2OH")).energy,
                       predict(loaded, molecule("CH3CH2OH")).energy)


def test_learned_rotary_wave_vectors_are_trained_and_saved(tmp_path):
    """``learned_rotary``: the wave vectors start at the fixed ones (same energies), get
    gradients, change the energies when they change, and survive a checkpoint.
    Mutant: ``phases`` ignoring the learned wave vectors → the perturbed model's
    energies equal the initial ones and the test fails."""
    torch.manual_seed(0)
    fixed = small_model()
    assert "rotary.wavevectors" not in dict(fixed.named_parameters())
    learned = small_model(learned_rotary=True)
    learned.load_state_dict(fixed.state_dict(), strict=False)  # all but the wave vectors
    mol = molecule("CH3CH2OH")
    start = predict(learned, mol)
    # equal up to the float32 rounding of the product k = ω u
    assert torch.allclose(start.energy, predict(fixed, mol).energy, rtol=1e-6, atol=0)
    waves = learned.rotary.wavevectors
    graph = AtomicGraph.from_atoms(mol, dtype=torch.float64, read_labels=False)
    force_loss = learned(graph, training=True).forces.square().sum()
    (grad,) = torch.autograd.grad(force_loss, waves)
    assert float(grad.abs().max()) > 1e-6
    with torch.no_grad():
        waves.add_(0.3 * torch.randn_like(waves))
    moved = predict(learned, mol)
    assert float((moved.energy - start.energy).abs().max()) > 1e-6
    loaded = load_model(save_model(learned, tmp_path / "learned.pt"))
    assert loaded.config.learned_rotary
    assert torch.equal(predict(loaded, mol).energy, moved.energy)


def test_calculator_and_md_angular_momentum():
    """Through MLPotCalculator, and 150 NVE steps with mlpot.md: with frame averaging
    the torque vanishes and angular momentum is conserved to rounding; without it the
    untrained model's torque changes L visibly."""
    mol = molecule("CH3CH2OH")
    model = small_model(frame_averaging=True)
    mol.calc = MLPotCalculator(model)
    ref = predict(model, mol)
    assert np.isclose(mol.get_potential_energy(), float(ref.energy[0]), rtol=1e-12)
    assert np.allclose(mol.get_forces(), ref.forces.numpy(), rtol=1e-12, atol=1e-14)
    drifts = {}
    for fa in (True, False):
        ff = ForceField(small_model(frame_averaging=fa))
        state = maxwell_boltzmann(MDState.from_atoms([mol], seed=2), 300.0)
        state = ff.evaluate(state)
        vv = VelocityVerlet(0.25)
        momentum_0 = _angular_momentum(state)
        energy_0 = float(vv.conserved_energy(state)[0])
        for _ in range(150):
            state = vv.step(state, ff)
        drifts[fa] = float((_angular_momentum(state) - momentum_0).norm())
        assert abs(float(vv.conserved_energy(state)[0]) - energy_0) < 1e-3
    assert drifts[True] < 1e-10, drifts
    assert drifts[False] > 1e3 * max(drifts[True], 1e-12), drifts


def _angular_momentum(state: MDState) -> torch.Tensor:
    centre = (state.masses[:, None] * state.positions).sum(0) / state.masses.sum()
    return torch.linalg.cross(state.positions - centre, state.momenta).sum(0)


def test_bad_input_gives_clear_errors():
    model = small_model()
    with pytest.raises(ValueError, match=r"element Fe \(atom 1, system 0\)"):
        predict(model, ase.Atoms("HFe", positions=[[0, 0, 0], [0, 0, 1.5]]))
    charged = molecule("H2O")
    charged.info["charge"] = 11
    with pytest.raises(ValueError, match=r"system 0: charge 11 .*outside the model's range"):
        predict(model, charged)
    doublet = molecule("H2O")
    doublet.info["spin"] = 2
    with pytest.raises(ValueError, match=r"impossible for 10 electrons"):
        predict(model, doublet)
    too_many = molecule("H2O")
    too_many.info["charge"], too_many.info["spin"] = 8, 5
    with pytest.raises(ValueError, match=r"impossible for 2 electrons"):
        predict(model, too_many)
    with pytest.raises(ValueError, match="dim/heads must be an even integer"):
        TransIPPotential(SPECIES, dim=18, heads=2)
    with pytest.raises(ValueError, match="num_layers must be an integer >= 1"):
        TransIPPotential(SPECIES, num_layers=0)
    with pytest.raises(ValueError, match="unknown element symbol 'Xx'"):
        TransIPPotential(["Xx"])


def test_rotation_of_the_input_is_what_frames_undo():
    """Cross-check of the frame construction: the frame-averaged energy of a molecule
    equals the plain model's frame average computed by hand from X·V·S."""
    model = small_model(frame_averaging=True)
    plain = small_model()
    plain.load_state_dict(model.state_dict())
    mol = molecule("HCOOH")
    x = mol.positions - mol.positions.mean(0)
    _, vectors = np.linalg.eigh(x.T @ x / len(x))
    if np.linalg.det(vectors) < 0:
        vectors[:, 2] *= -1
    energies = []
    for signs in ((1, 1, 1), (1, -1, -1), (-1, 1, -1), (-1, -1, 1)):
        framed = mol.copy()
        framed.positions = x @ (vectors * np.array(signs))
        energies.append(float(predict(plain, framed).energy[0]))
    assert np.isclose(float(predict(model, mol).energy[0]), np.mean(energies), rtol=1e-12)
    turned = mol.copy()
    turned.positions = mol.positions @ random_rotation(np.random.default_rng(0)).T
    assert not np.isclose(
        float(predict(plain, turned).energy[0]), float(predict(plain, mol).energy[0]), rtol=1e-6
    )


def test_neighbour_density_matches_its_definition():
    """Δh_i = W vec(Σ_{j≠i} φ_k(r_ij) c(r_ij) a(Z_j)) by explicit loops over all pairs,
    against the module on the neighbour list of a model-sized cutoff (pairs beyond it
    must add nothing), and the model's tokens. Mutants: a(Z_i) instead of a(Z_j), the
    envelope dropped → each fails."""
    from mlpot.models.transip_layers import NeighbourDensity
    from mlpot.neighbors import with_neighbors

    torch.manual_seed(0)
    density = NeighbourDensity(num_species=4, dim=6, count=5, cutoff=2.0, channels=3).double()
    atoms = molecule("CH3CH2OH")
    z = torch.as_tensor([SPECIES.index(s) for s in atoms.get_chemical_symbols()])
    r = torch.as_tensor(atoms.positions)
    loops = torch.zeros(len(atoms), 5, 3, dtype=torch.float64)
    for i in range(len(atoms)):
        for j in range(len(atoms)):
            if i != j:
                d = (r[j] - r[i]).norm()
                x = min(float(d) / 2.0, 1.0)  # the C² smoothstep envelope, written out
                phi = density.radial.basis(d) * (1 - 10 * x**3 + 15 * x**4 - 6 * x**5)
                loops[i] += phi[:, None] * density.species_code[z[j]][None, :]
    expected = density.out(loops.flatten(-2))
    graph = AtomicGraph.from_atoms(atoms, dtype=torch.float64, read_labels=False)
    graph = with_neighbors(graph, 2.5)  # a skin: pairs in (2.0, 2.5] must count zero
    i, j = graph.edge_index
    lengths = (graph.positions[j] - graph.positions[i]).norm(dim=1)
    assert bool((lengths > 2.0).any()) and bool((lengths < 2.0).any())
    got = density(len(atoms), graph.edge_index, lengths, z)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_angular_density_matches_its_definition():
    """p_i,nn'l = Σ_m A_i,nlm A_i,n'lm written through the addition theorem:
    Σ_{j,k≠i} R_n(r_ij, Z_j) R_n'(r_ik, Z_k) (2l+1) P_l(r̂_ij · r̂_ik) (e3nn's component
    normalisation), with R_n = Σ_kc W_nkc φ_k(r) c(r) a_c(Z), by explicit loops over all
    pairs, against the module on a neighbour list with a skin (pairs beyond r_c add
    nothing); the features are rotation invariant (1e-12). Mutants: a(Z_i) instead of
    a(Z_j), the envelope dropped, the l-blocks shifted by one → each fails."""
    from numpy.polynomial import legendre

    from mlpot.models.transip_layers import AngularDensity
    from mlpot.neighbors import with_neighbors

    torch.manual_seed(0)
    lmax, radial = 3, 3
    angular = AngularDensity(
        num_species=4, dim=6, count=5, cutoff=2.0, lmax=lmax, radial=radial, channels=2
    ).double()
    atoms = molecule("CH3CH2OH")
    z = torch.as_tensor([SPECIES.index(s) for s in atoms.get_chemical_symbols()])
    r = torch.as_tensor(atoms.positions)
    upper = torch.triu_indices(radial, radial)
    expected = []
    for i in range(len(atoms)):
        vectors, functions = [], []
        for j in range(len(atoms)):
            d = (r[j] - r[i]).norm()
            if i != j and d < 2.0:
                x = float(d) / 2.0  # the C² smoothstep envelope, written out
                phi = angular.basis.basis(d) * (1 - 10 * x**3 + 15 * x**4 - 6 * x**5)
                code = angular.species_code[z[j]]
                functions.append(angular.radial((phi[:, None] * code[None, :]).flatten()))
                vectors.append((r[j] - r[i]) / d)
        rows = []
        for l in range(lmax + 1):
            p = torch.zeros(radial, radial, dtype=torch.float64)
            for a, fa in zip(vectors, functions, strict=True):
                for b, fb in zip(vectors, functions, strict=True):
                    coefficients = [0.0] * l + [1.0]
                    legendre_l = legendre.legval(float(a @ b), coefficients)
                    p = p + (2 * l + 1) * legendre_l * fa[:, None] * fb[None, :]
            rows.append(p[upper[0], upper[1]])
        expected.append(torch.cat(rows))
    expected = angular.out(torch.stack(expected))
    graph = with_neighbors(
        AtomicGraph.from_atoms(atoms, dtype=torch.float64, read_labels=False), 2.5
    )
    i, j = graph.edge_index
    vectors = graph.positions[j] - graph.positions[i]
    lengths = vectors.norm(dim=1)
    assert bool((lengths > 2.0).any()) and bool((lengths < 2.0).any())
    got = angular(len(atoms), graph.edge_index, vectors, z)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
    turned = vectors @ torch.as_tensor(random_rotation(np.random.default_rng(2))).T
    torch.testing.assert_close(
        angular(len(atoms), graph.edge_index, turned, z), got, rtol=1e-12, atol=1e-12
    )


def test_distance_bias_of_pairs_matches_its_definition():
    """b_lh(r) = Σ_k w_lhk φ_k(r) for every pair, written out with the bumps'
    formula, on distances on both sides of the basis' reach r_max + 2s (where pairs()
    skips the basis), values and distance gradients. Mutant: the reach cut at r_max →
    fails."""
    from mlpot.models.transip_layers import DistanceBias

    torch.manual_seed(1)
    bias = DistanceBias(layers=2, heads=3, count=5, r_max=2.0).double()
    s = 2.0 / 4
    reach = 2.0 + 2 * s
    distance = torch.rand(2, 7, 7, dtype=torch.float64) * 2 * reach
    distance[0, 0, 1] = reach - 1e-3  # just inside: non-zero, small
    distance.requires_grad_(True)
    x = (distance[..., None] - torch.arange(5, dtype=torch.float64) * s) / (2 * s)
    phi = torch.clamp(1 - x * x, min=0) ** 3  # [B, n, n, K]
    expected = torch.einsum("bijk,lhk->lbhij", phi, bias.weight)
    got = bias.pairs(distance)
    assert got.shape == (2, 2, 3, 7, 7)
    assert bool((distance > reach).any()) and float(got[:, 0, :, 0, 1].abs().max()) > 0
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-14)
    probe = torch.randn_like(got)
    (grad,) = torch.autograd.grad((got * probe).sum(), distance)
    (ref,) = torch.autograd.grad((expected * probe).sum(), distance)
    torch.testing.assert_close(grad, ref, rtol=1e-10, atol=1e-12)


def test_neighbour_sum_matches_its_definition():
    """Δh_i = W_out (1/10) Σ_{j≠i} (Σ_k φ_k(r_ij) c(r_ij) F_kd) (W_in x_j)_d by explicit
    loops over all pairs, against the module on the pairs of a neighbour list with a skin
    (pairs beyond r_c must add nothing). Mutants: x_i instead of x_j, the envelope
    dropped → each fails."""
    from mlpot.models.transip_layers import NeighbourPairs
    from mlpot.neighbors import with_neighbors

    torch.manual_seed(0)
    model = small_model(neighbour_sum=True)  # r_c = 3 Å
    block = model.blocks[1].neighbour_sum
    atoms = molecule("CH3CH2OH")
    r = torch.as_tensor(atoms.positions)
    x = torch.randn(len(atoms), 16, dtype=torch.float64)
    summed = torch.zeros_like(x)
    for i in range(len(atoms)):
        for j in range(len(atoms)):
            d = (r[j] - r[i]).norm()
            if i != j and d < 3.0:
                t = float(d) / 3.0  # the C² smoothstep envelope, written out
                phi = model.sum_basis.basis(d) * (1 - 10 * t**3 + 15 * t**4 - 6 * t**5)
                summed[i] += (phi @ block.filters) * block.values(x[j])
    expected = block.out(0.1 * summed)
    graph = with_neighbors(
        AtomicGraph.from_atoms(atoms, dtype=torch.float64, read_labels=False), 3.6
    )
    i, j = graph.edge_index
    lengths = (graph.positions[j] - graph.positions[i]).norm(dim=1)
    assert bool((lengths > 3.0).any()) and bool((lengths < 3.0).any())
    pairs = NeighbourPairs.build(i, j, lengths, model.sum_basis)
    torch.testing.assert_close(block(x, pairs), expected, rtol=1e-12, atol=1e-12)
    # and the branch is part of the model: without it the energy changes
    graph = AtomicGraph.from_atoms(atoms, dtype=torch.float64, read_labels=False)
    energy = model(graph).energy
    with torch.no_grad():
        block.out.weight.zero_()
        block.out.bias.zero_()
    assert not torch.allclose(model(graph).energy, energy, rtol=1e-6, atol=0)
