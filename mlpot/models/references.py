"""`SystemReferences`: per-system reference energies of charge and spin states.

E0 (one energy per element) references a neutral closed-shell structure. Removing or
adding an electron shifts a molecule's total energy by an ionisation energy or an
electron affinity, several eV, almost independent of its size: GFN2-xTB labels of
small organic molecules give, fitted jointly with E0 (``python -m benchmarks
transip-experiment``, 3000 structures) +13.4 eV for a cation, −4.6 eV for an anion,
+2.3 / +4.4 eV for a doublet / triplet. A sum of per-atom energies from a local model
cannot represent such a per-molecule constant (its share per atom would have to
depend on the molecule's size), so the charge/spin embeddings leave it in the error:
the energy residual of the E0 fit alone was 873 meV/atom on that data, 318 with these
four constants. The term here adds

    E_sys(Q, 2S+1) = e_Q + e_S,   with e_0 = 0 and e_1 = 0 (neutral singlet),

to every system's energy: additive in charge and multiplicity (one constant per charge
state, one per multiplicity, so the states seen in training combine), fitted with E0
by linear least squares before training (:func:`mlpot.train.data.solve_references`)
and held fixed, like E0. States absent from the training data keep 0. The split
between e_Q and e_S is determined only where charges and multiplicities vary
independently in the data (e.g. neutral doublets next to charged doublets); otherwise
the fit determines their sums, which is all a prediction of a seen state uses. Forces and stress
do not change (a constant per system); in the per-atom energies it is shared equally by
the atoms of the system, so they still sum to the total.
"""

from __future__ import annotations

import torch
from torch import nn


def check_charge_spin(charge: torch.Tensor, spin: torch.Tensor, max_charge: int,
                      max_spin: int) -> None:
    """Raise ``ValueError`` naming the first system whose total ``charge [B]`` (e) or
    multiplicity ``spin [B]`` lies outside |charge| ≤ ``max_charge``,
    1 ≤ spin ≤ ``max_spin`` (the range of a model's charge/spin embeddings and
    references)."""
    bad = (charge.abs() > max_charge) | (spin < 1) | (spin > max_spin)
    if bool(bad.any()):
        b = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"system {b}: charge {int(charge[b])} / spin multiplicity {int(spin[b])} outside "
            f"the model's range (|charge| <= {max_charge}, 1 <= spin <= {max_spin})"
        )


class SystemReferences(nn.Module):
    """Reference energies e_Q of charges −Q_max…Q_max and e_S of multiplicities 1…S_max.

    Args:
        max_charge: largest |total charge|, e (the model's charge-embedding range).
        max_spin: largest spin multiplicity 2S+1.

    Buffers (saved in checkpoints):
        charge_energy: ``[2 Q_max + 1]`` eV, index Q + Q_max (entry Q = 0 stays 0).
        spin_energy: ``[S_max]`` eV, index 2S (entry multiplicity 1 stays 0).
    """

    charge_energy: torch.Tensor
    spin_energy: torch.Tensor

    def __init__(self, max_charge: int, max_spin: int) -> None:
        super().__init__()
        self.max_charge, self.max_spin = int(max_charge), int(max_spin)
        self.register_buffer("charge_energy", torch.zeros(2 * self.max_charge + 1))
        self.register_buffer("spin_energy", torch.zeros(self.max_spin))

    def forward(self, charge: torch.Tensor, spin: torch.Tensor) -> torch.Tensor:
        """``[B]`` energies (eV) of systems with total ``charge [B]`` and multiplicity
        ``spin [B]``. The caller checks the range first (:func:`check_charge_spin`, which
        the models run on their charge/spin embeddings); this runs no check of its own,
        so an MD step does not wait on a second device→host sync."""
        return self.charge_energy[charge + self.max_charge] + self.spin_energy[spin - 1]

    def set(self, charge: dict[int, float], spin: dict[int, float]) -> None:
        """Set e_Q (``{charge: eV}``) and e_S (``{multiplicity: eV}``); others become 0."""
        if charge.get(0, 0.0) != 0.0 or spin.get(1, 0.0) != 0.0:
            raise ValueError("the neutral (charge 0) and singlet (spin 1) references are 0 "
                             "by definition (E0 holds them)")
        charges = torch.zeros_like(self.charge_energy)
        spins = torch.zeros_like(self.spin_energy)
        for q, energy in charge.items():
            if abs(q) > self.max_charge:
                raise ValueError(f"charge {q} outside the reference range ±{self.max_charge}")
            charges[q + self.max_charge] = energy
        for s, energy in spin.items():
            if not 1 <= s <= self.max_spin:
                raise ValueError(f"spin multiplicity {s} outside the range 1..{self.max_spin}")
            spins[s - 1] = energy
        self.charge_energy.copy_(charges)
        self.spin_energy.copy_(spins)

    def values(self) -> tuple[dict[int, float], dict[int, float]]:
        """Every reference, zeros included: ``({charge: eV}, {multiplicity: eV})`` over the
        charges ≠ 0 and the multiplicities > 1 of the range (the states that have one)."""
        charge = {q: float(self.charge_energy[q + self.max_charge])
                  for q in range(-self.max_charge, self.max_charge + 1) if q}
        spin = {s: float(self.spin_energy[s - 1]) for s in range(2, self.max_spin + 1)}
        return charge, spin

    def as_dicts(self) -> tuple[dict[int, float], dict[int, float]]:
        """The non-zero references: ``({charge: eV}, {multiplicity: eV})``."""
        charge, spin = self.values()
        return ({q: e for q, e in charge.items() if e != 0.0},
                {s: e for s, e in spin.items() if e != 0.0})
