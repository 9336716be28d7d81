"""Readers (OMol25, MPTrj, extxyz), the packed HDF5 store and reference-label generators."""
