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

The integer hash is Wellons' ``lowbias32``-style 32-bit mixer with multipliers below
2³¹, evaluated in int64 with a 32-bit mask after every multiply (so nothing
overflows, on CPU or CUDA). Two chained mixing rounds keyed by two 32-bit key words
turn (key, counter) into one 32-bit word. Normals come from Box–Muller on two
words: u₁ = (h₁ + 1)/2³² ∈ (0, 1], u₂ = h₂/2³², z = sqrt(−2 ln u₁)·(cos, sin)(2π u₂),
evaluated in float64 and rounded to the requested dtype (|z| ≤ 6.66 by
construction; P(|z| > 6.66) ≈ 3e-11 for a true normal).

Bit-for-bit batch invariance on CPU: torch evaluates ``log``/``cos``/``sin`` on
full SIMD vectors and the tail of a tensor element by element, and the two may
differ in the last bit. Each system's pairs therefore occupy a block padded to
:data:`BLOCK` pairs, so a value always sits at the same SIMD lane whatever the batch.
"""

from __future__ import annotations

import math

import torch

#: pairs of normals per padding block (a multiple of every SIMD width × unroll).
BLOCK = 64
_MASK = 0xFFFFFFFF
_M1, _M2 = 0x45D9F3B, 0x2C1B3C6D  # odd multipliers < 2**31 (no int64 overflow)


def mix32(x: torch.Tensor) -> torch.Tensor:
    """Avalanche a 32-bit word held in int64 (a bijection of [0, 2³²))."""
    x = ((x >> 16) ^ x) * _M1 & _MASK
    x = ((x >> 15) ^ x) * _M2 & _MASK
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


def normals(seeds: torch.Tensor, step: int, stream: int, counts: torch.Tensor,
            dtype: torch.dtype) -> torch.Tensor:
    """Standard normals, ``counts[b]`` for system ``b``, concatenated: ``[Σ counts]``.

    Args:
        seeds: ``[B]`` int64 per-system seeds.
        step: the step number (part of the key).
        stream: which draw of the step (part of the key).
        counts: ``[B]`` int64 numbers of normals per system (on the seeds' device).
        dtype: result dtype.
    """
    device = seeds.device
    pairs = (counts + 1) // 2
    blocks = (pairs + BLOCK - 1) // BLOCK * BLOCK
    total = int(blocks.sum())
    if total == 0:
        return torch.zeros(0, dtype=dtype, device=device)
    system = torch.repeat_interleave(torch.arange(len(counts), device=device), blocks,
                                     output_size=total)
    first = torch.cumsum(blocks, 0) - blocks
    k = torch.arange(total, device=device) - first[system]
    k1, k2 = stream_keys(seeds, step, stream)
    k1, k2 = k1[system], k2[system]
    u1 = (hash_words(k1, k2, 2 * k).double() + 1.0) * 2.0**-32
    u2 = hash_words(k1, k2, 2 * k + 1).double() * 2.0**-32
    radius = torch.sqrt(-2.0 * torch.log(u1))
    angle = (2 * math.pi) * u2
    z = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1).view(-1)
    keep = torch.arange(2 * total, device=device) - 2 * first.repeat_interleave(
        2 * blocks, output_size=2 * total) < counts.repeat_interleave(2 * blocks,
                                                                       output_size=2 * total)
    return z[keep].to(dtype)


def normals_per_atom(seeds: torch.Tensor, step: int, stream: int,
                     atoms_per_system: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``[N, 3]`` standard normals, atoms of system ``b`` from its own stream."""
    return normals(seeds, step, stream, 3 * atoms_per_system, dtype).view(-1, 3)


def normals_per_system(seeds: torch.Tensor, step: int, stream: int, size: int,
                       dtype: torch.dtype) -> torch.Tensor:
    """``[B, size]`` standard normals, one row per system."""
    counts = torch.full_like(seeds, size, dtype=torch.int64)
    return normals(seeds, step, stream, counts, dtype).view(-1, size)
