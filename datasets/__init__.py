"""Readers (OMol25, MPTrj, extxyz), the packed HDF5 store and reference-label generators.

``read(path)`` streams any supported file as labelled ``ase.Atoms``;
``StructureDataset`` serves the same records as ``AtomicGraph`` items for torch.
"""

from mlpot.datasets.convert import convert
from mlpot.datasets.e0 import fit_e0, fit_e0_structures
from mlpot.datasets.errors import DataFormatError, ReadReport
from mlpot.datasets.extxyz import ExtxyzReader
from mlpot.datasets.io import detect_format, open_reader, read
from mlpot.datasets.mptrj import vasp_kbar_to_ase
from mlpot.datasets.omol25 import OMol25Reader
from mlpot.datasets.splits import group_split
from mlpot.datasets.statistics import neighbor_statistics, summarize
from mlpot.datasets.store import PackedStore, PackedStoreWriter, write_store
from mlpot.datasets.torch_dataset import StructureDataset

__all__ = [
    "DataFormatError",
    "ExtxyzReader",
    "OMol25Reader",
    "PackedStore",
    "PackedStoreWriter",
    "ReadReport",
    "StructureDataset",
    "convert",
    "detect_format",
    "fit_e0",
    "fit_e0_structures",
    "group_split",
    "neighbor_statistics",
    "open_reader",
    "read",
    "summarize",
    "vasp_kbar_to_ase",
    "write_store",
]
