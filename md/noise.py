"""Counter-based random numbers: every system's noise is a pure function of
(seed, step, stream, index), drawn for the whole batch in one vectorised call.

Why counter-based. A stateful generator per system (one ``torch.Generator`` each)
needs one Python call per system and step, and its state must be saved, restored
and rolled back. A counter-based generator (Salmon, Moraes, Dror & Shaw, "Parallel
random numbers: as easy as 1, 2, 3", SC 2011) instead hashes a counter under a key:
here the key is (the system's seed, the step number, a stream id naming the draw
within the step) and the counter is the draw's index within its system. Hence

* a system's numbers do not depend on its batch-mates (batched = single);
* a restart needs only the seeds (the step is in the state) and a rolled-back step
  simply draws the same numbers again;
* the draw is ~30 elementwise tensor operations for the whole batch, on any device.

The integer hash is the two-round xorshift-multiply 32-bit mixer (multiplier
0x45d9f3b < 2³¹), evaluated in int64 with a 32-bit mask after every multiply (so
nothing overflows, on CPU or CUDA). Two chained mixing rounds keyed by two 32-bit key words
turn (key, counter) into one 32-bit word. Normals come from Box–Muller on two
words: u₁ = (h₁ + 1)/2³² ∈ (0, 1], u₂ = h₂/2³², z = sqrt(−2 ln u₁)·(cos, sin)(2π u₂),
evaluated in float64 and rounded to the requested dtype (|z| ≤ 6.66 by
construction; P(|z| > 6.66) ≈ 3e-11 for a true normal).

Bit-for-bit batch invariance on CPU: torch evaluates ``log``/``cos``/``sin`` on full
SIMD vectors and the tail of a tensor element by element, and the two may differ in
the last bit; above 32,768 elements it also splits the work between threads at
arbitrary offsets. The uniforms are therefore padded to a multiple of :data:`BLOCK`
and transformed in pieces of :data:`PIECE` values (both multiples of every SIMD width
× unroll), so every value goes through the same vector code wherever it sits.
"""

from __future__ import annotations

import math

import torch

#: the uniforms' length is padded to a multiple of this (SIMD width × unroll).
BLOCK = 16
#: values transformed per call (a multiple of BLOCK below torch's parallel grain).
PIECE = 16384
_MASK = 0xFFFFFFFF
_M1 = 0x45D9F3B  # odd multiplier < 2**31 (no int64 overflow)


def mix32(x: torch.Tensor) -> torch.Tensor:
    """Avalanche a 32-bit word held in int64 (a bijection of [0, 2³²)): the two-multiply
    xorshift-multiply mixer with multiplier 0x45d9f3b."""
    x = ((x >> 16) ^ x) * _M1 & _MASK
    x = ((x >> 16) ^ x) * _M1 & _MASK
    return (x >> 16) ^ x


def stream_keys(seeds: torch.Tensor, step: int, stream: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two ``[B]`` 32-bit key words for (seed_b, step, stream)."""
    s = seeds.to(torch.int64)
    lo, hi = s & _MASK, (s >> 32) & _MASK
    k1 = mix32(lo ^ mix32(torch.full_like(s, (step & _MASK) ^ (stream * 0x9E3779B9 & _MASK))))
    k2 = mix32(hi ^ mix32(k1 ^ ((step >> 32) & _MASK) ^ 0x632BE5AB))
    return k1, k2


def hash_words(k1: torch.Tensor, k2: torch.Tensor, counter: torch.Tensor) -> torch.Tensor:
    """32-bit words (int64 tensor) for ``counter`` under the keys (broadcast together)."""
    return mix32(mix32((counter + k1) & _MASK) ^ k2)


def box_muller(u1: torch.Tensor, u2: torch.Tensor) -> torch.Tensor:
    """``[n, 2]`` normals from float64 uniforms u₁ ∈ (0, 1], u₂ ∈ [0, 1) (``n`` a multiple
    of :data:`BLOCK`), in pieces of :data:`PIECE` (see the module docstring)."""
    out = []
    for a, b in zip(u1.split(PIECE), u2.split(PIECE), strict=True):
        radius = torch.sqrt(-2.0 * torch.log(a))
        angle = (2 * math.pi) * b
        out.append(torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1))
    return torch.cat(out)


def normals(
    seeds: torch.Tensor, step: int, stream: int, counts: torch.Tensor, dtype: torch.dtype
) -> torch.Tensor:
    """Standard normals, ``counts[b]`` for system ``b``, concatenated: ``[Σ counts]``.

    Value ``k`` of system ``b`` is the (k mod 2) output of Box–Muller on the words of
    counters 2⌊k/2⌋ and 2⌊k/2⌋ + 1 under (seeds[b], step, stream).

    Args:
        seeds: ``[B]`` int64 per-system seeds.
        step: the step number (part of the key).
        stream: which draw of the step (part of the key).
        counts: ``[B]`` int64 numbers of normals per system (on the seeds' device).
        dtype: result dtype.
    """
    device = seeds.device
    pairs = (counts + 1) >> 1
    used = int(pairs.sum())
    total = (used + BLOCK - 1) // BLOCK * BLOCK
    if total == 0:
        return torch.zeros(0, dtype=dtype, device=device)
    system = torch.repeat_interleave(torch.arange(len(counts), device=device), pairs,
                                     output_size=used)
    first = torch.cumsum(pairs, 0) - pairs
    k = torch.arange(used, device=device) - first.index_select(0, system)
    k1, k2 = stream_keys(seeds, step, stream)
    k1, k2 = k1.index_select(0, system), k2.index_select(0, system)
    u1 = torch.ones(total, dtype=torch.float64, device=device)
    u2 = torch.zeros(total, dtype=torch.float64, device=device)
    u1[:used] = (hash_words(k1, k2, 2 * k).double() + 1.0) * 2.0**-32
    u2[:used] = hash_words(k1, k2, 2 * k + 1).double() * 2.0**-32
    z = box_muller(u1, u2)[:used].reshape(-1)
    odd = (counts & 1).bool()
    if bool(odd.any()):  # drop the unused second value of an odd system's last pair
        last = 2 * torch.cumsum(pairs, 0) - 1
        keep = torch.ones_like(z, dtype=torch.bool).index_fill(0, last[odd], False)
        z = z[keep]
    return z.to(dtype)


def normals_per_atom(
    seeds: torch.Tensor, step: int, stream: int, atoms_per_system: torch.Tensor, dtype: torch.dtype
) -> torch.Tensor:
    """``[N, 3]`` standard normals, atoms of system ``b`` from its own stream."""
    return normals(seeds, step, stream, 3 * atoms_per_system, dtype).view(-1, 3)


def normals_per_system(
    seeds: torch.Tensor, step: int, stream: int, size: int, dtype: torch.dtype
) -> torch.Tensor:
    """``[B, size]`` standard normals, one row per system."""
    counts = torch.full_like(seeds, size, dtype=torch.int64)
    return normals(seeds, step, stream, counts, dtype).view(-1, size)
