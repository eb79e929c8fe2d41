"""The benchmark's fixed settings: the study's grids, the chunk sizes, the GPU the memory estimate is for.

Everything a run may change is a command-line option of ``run.py``; what is here is what the
benchmark compares against.
"""

from __future__ import annotations

# The Max-Sensitivity settings (radius, samples) of Table 6 of Lamprou (2023), and the quick ones:
# the smallest and the largest sample count of that table.
TABLE6_SENSITIVITY = ((0.05, 20), (0.1, 20), (0.2, 30), (0.3, 30), (0.4, 40), (0.5, 40))
QUICK_SENSITIVITY = ((0.05, 20), (0.5, 40))
# The AOPC region counts of Table 5 of Lamprou (2023), and the quick ones.
TABLE5_REGIONS = (4, 8, 11, 14)
QUICK_REGIONS = (4, 8)

DEFAULT_CHUNKS = {"aopc": 64, "max_sensitivity": 32, "haas": 64}  # the metrics' own defaults
GPU_MEMORY = 16 * 2**30  # the GPU the memory estimate is for (a 16 GB V100, as in the original study)
NUM_CLASSES = 7
# What aopc holds per image of the batch passed in, at 224 px: the image and its noise (3 x float32),
# the removal step of every pixel (int64) and the map (float32).
AOPC_INPUT_BYTES_224 = (2 * 3 * 4 + 8 + 4) * 224 * 224

# The timings the original study reports on a V100 (seconds per image), kept in every result file.
ORIGINAL_STUDY_TIMINGS = {"aopc_14x14_s_per_image_v100": 2.2, "max_sensitivity_s_per_image_v100_up_to": 1.2}
