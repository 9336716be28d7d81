"""MPTrj JSON: exact round trip, the stress conversion, energy choice, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from format_writers import make_mptrj

from mlpot.datasets import DataFormatError, ReadReport, read, vasp_kbar_to_ase
from mlpot.datasets.mptrj import iter_mptrj


def test_stress_conversion_hand_computed():
    # ASE's units are CODATA 2014: e = 1.6021766208e-19 C, so 1 eV/Å^3 =
    # 1.6021766208e-19 J / 1e-30 m^3 = 160.21766208 GPa, and 1 kBar = 0.1 GPa.
    # VASP's positive (compressive) stress becomes ASE's negative (tensile positive).
    kbar = np.array([[10.0, 0.0, -3.0], [0.0, -20.0, 5.0], [-3.0, 5.0, 0.5]])
    expected = -kbar * 0.1 / 160.21766208
    np.testing.assert_allclose(vasp_kbar_to_ase(kbar), expected, rtol=1e-12, atol=0)
    assert vasp_kbar_to_ase([[10.0, 0, 0], [0, 0, 0], [0, 0, 0]])[0, 0] == \
        pytest.approx(-6.2415091259e-3, rel=1e-10)


def test_exact_round_trip(mptrj_file):
    path, data = mptrj_file
    frames = [(m, f, fr) for m, fs in data.items() for f, fr in fs.items()]
    structures = list(read(path))
    assert len(structures) == len(frames)
    for atoms, (mp_id, frame_id, fr) in zip(structures, frames, strict=True):
        s = fr["structure"]
        assert atoms.get_chemical_symbols() == [site["species"][0]["element"]
                                                for site in s["sites"]]
        np.testing.assert_array_equal(atoms.positions, [site["xyz"] for site in s["sites"]])
        np.testing.assert_array_equal(atoms.cell[:], s["lattice"]["matrix"])
        assert atoms.pbc.all()
        assert atoms.get_potential_energy() == fr["uncorrected_total_energy"]
        np.testing.assert_array_equal(atoms.get_forces(), fr["force"])
        voigt = vasp_kbar_to_ase(fr["stress"])[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
        np.testing.assert_array_equal(atoms.get_stress(), voigt)
        assert atoms.info["mp_id"] == mp_id
        assert atoms.info["frame_id"] == frame_id
        assert atoms.info["corrected_total_energy"] == fr["corrected_total_energy"]
        assert atoms.info["bandgap"] == fr["bandgap"]
        assert "ef_per_atom_relaxed" not in atoms.info  # null in the file
        if fr["magmom"] is None:
            assert "magmoms" not in atoms.arrays
        else:
            np.testing.assert_array_equal(atoms.arrays["magmoms"], fr["magmom"])


def test_energy_choice_is_explicit(mptrj_file):
    path, data = mptrj_file
    fr = next(iter(next(iter(data.values())).values()))
    n = len(fr["structure"]["sites"])
    first = {key: next(iter(read(path, energy_key=key))).get_potential_energy()
             for key in ("uncorrected_total_energy", "corrected_total_energy",
                         "energy_per_atom")}
    assert first["uncorrected_total_energy"] == fr["uncorrected_total_energy"]
    assert first["corrected_total_energy"] == fr["corrected_total_energy"]
    assert first["energy_per_atom"] == pytest.approx(fr["energy_per_atom"] * n, rel=1e-14)
    with pytest.raises(ValueError, match="energy_key"):
        next(iter(read(path, energy_key="ef_per_atom")))


def test_fractional_only_sites(tmp_path, rng):
    data = make_mptrj(rng, 1, 1)
    fr = next(iter(next(iter(data.values())).values()))
    expected = np.array([site.pop("xyz") for site in fr["structure"]["sites"]])
    path = tmp_path / "abc.json"
    path.write_text(json.dumps(data))
    atoms = next(iter(read(path)))
    np.testing.assert_allclose(atoms.positions, expected, atol=1e-12)


def _write(tmp_path, data, name="bad.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(("corrupt", "message"), [
    (lambda fr: fr.pop("force"), "missing forces"),
    (lambda fr: fr["structure"]["sites"][0]["species"][0].update(element="Xx"),
     "unknown element symbol 'Xx'"),
    (lambda fr: fr.update(force=fr["force"] + [[0.0, 0.0, 0.0]]), "forces has shape"),
    (lambda fr: fr.update(stress=[[1.0, 2.0]]), "stress has shape"),
])
def test_bad_frame_names_file_and_record(tmp_path, rng, corrupt, message):
    data = make_mptrj(rng, 3, 2)
    mp_id = list(data)[1]
    frame_id = list(data[mp_id])[1]
    corrupt(data[mp_id][frame_id])
    path = _write(tmp_path, data)
    with pytest.raises(DataFormatError) as info:
        list(read(path))
    text = str(info.value)
    assert "bad.json" in text
    assert f"{mp_id}/{frame_id}" in text
    assert message in text
    report = ReadReport()
    assert len(list(read(path, skip_invalid=True, report=report))) == 5
    assert report.skipped == 1
    assert report.read == 5


def test_truncated_json(tmp_path, rng):
    data = make_mptrj(rng, 4, 2)
    text = json.dumps(data)
    path = tmp_path / "trunc.json"
    path.write_text(text[: int(len(text) * 0.6)])
    with pytest.raises(DataFormatError, match=r"trunc\.json.*truncated or malformed JSON"):
        list(read(path))
    report = ReadReport()
    partial = list(read(path, skip_invalid=True, report=report))
    assert 0 < len(partial) < 8
    assert report.skipped == 1
    assert [a.info["mp_id"] for a in partial] == \
        [m for m in list(data)[: len(partial) // 2] for _ in range(2)]


def test_streaming_is_lazy(mptrj_file):
    path, _ = mptrj_file
    it = iter_mptrj(path)
    first = next(it)  # no full parse needed to get the first frame
    assert first.info["mp_id"] == "mp-1000"
