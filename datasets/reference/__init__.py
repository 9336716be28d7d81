"""Reference-label generators: small real training sets computed locally.

``emt_metals`` labels metal structures with ASE's EMT (energy, forces, stress);
``xtb_molecules`` labels organic molecules with GFN2-xTB through ``tblite``
(energy, forces, with charge and multiplicity). Both write the packed HDF5 store.
"""

from mlpot.datasets.reference.emt import EMT_METALS, emt_metals
from mlpot.datasets.reference.xtb import xtb_molecules

__all__ = ["EMT_METALS", "emt_metals", "xtb_molecules"]
