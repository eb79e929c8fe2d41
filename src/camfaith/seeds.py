"""Separate seeded random streams: one per use, derived from the run's seed.

A run has one seed, but several things in it are random: the removal noise of AOPC, the noise of
Max-Sensitivity, the random control map, the random tie-break of AOPC. Drawn from one generator
seeded alike, two of them are the same numbers (a random map that is a rescaled copy of the
image's own removal noise is not a control that knows nothing). :func:`stream_seed` derives an
independent seed per named stream with NumPy's ``SeedSequence`` (its spawn key keeps streams apart
for the same entropy), so each stream is reproducible from the run's seed and unrelated to the others.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch

STREAMS = ("random map", "tie break")


def stream_seed(seed: int, stream: str) -> int:
    """A 63-bit seed for the named ``stream`` of a run seeded with ``seed`` (one of :data:`STREAMS`)."""
    if stream not in STREAMS:
        raise ValueError(f"unknown random stream {stream!r}; use one of {STREAMS}")
    sequence = np.random.SeedSequence(int(seed), spawn_key=(zlib.crc32(stream.encode()),))
    return int(sequence.generate_state(1, np.uint64)[0] >> np.uint64(1))


def draw(shape, generator: torch.Generator | None, device: torch.device | str, dtype: torch.dtype = torch.float32,
         normal: bool = False) -> torch.Tensor:
    """Uniform draws in [0, 1) (standard normal ones with ``normal=True``) from ``generator``, made on the
    generator's device (the CPU or ``device``) and returned on ``device``: a CPU generator gives the same
    numbers on every device. ``None`` uses the global RNG of ``device``."""
    device = torch.device(device)
    sample = torch.randn if normal else torch.rand
    return sample(shape, generator=generator, device=generator.device if generator is not None else device,
                  dtype=dtype).to(device)


def stream_generator(seed: int, stream: str) -> torch.Generator:
    """A CPU generator seeded with :func:`stream_seed` (CPU draws are the same on every device)."""
    return torch.Generator().manual_seed(stream_seed(seed, stream))
