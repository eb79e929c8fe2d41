"""The benchmark's fixed settings: the study's grids, the chunk sizes, the presets, the GPU the memory estimate is for.

Everything a run may change is a command-line option of ``run.py``; what is here is what the
benchmark compares against, and the presets (``--setting``) that fill in the options not given.
"""

from __future__ import annotations

from camfaith.costs import BENCHMARK_CLASSES

# The Max-Sensitivity settings (radius, samples) of Table 6 of Lamprou (2023), and the quick ones:
# the smallest and the largest sample count of that table.
TABLE6_SENSITIVITY = ((0.05, 20), (0.1, 20), (0.2, 30), (0.3, 30), (0.4, 40), (0.5, 40))
QUICK_SENSITIVITY = ((0.05, 20), (0.5, 40))
# The AOPC region counts of Table 5 of Lamprou (2023), and the quick ones.
TABLE5_REGIONS = (4, 8, 11, 14)
QUICK_REGIONS = (4, 8)

DEFAULT_CHUNKS = {"aopc": 64, "max_sensitivity": 32, "haas": 64}  # the metrics' own defaults
# At 224 px on one CPU thread a forward pass of VGG19 takes about half a second per image: small chunks keep each
# timed pass of the bound short, and cost the metrics next to nothing in efficiency at that size.
CPU_224_CHUNKS = {"aopc": 8, "max_sensitivity": 4, "haas": 4}

# The presets of ``--setting``: every value is a default that the command line's own option overrides. ``full224``
# has the two main networks of the ``thesis`` configuration (Lamprou 2023: VGG19 and ResNet50), sized to stay under
# ten minutes on one CPU thread (8.8 min measured on an idle machine); ``--archs vgg19,resnet50,resnet34`` adds the
# network of its two other runs (about two minutes more), which the book needs to project every run of it.
# ``full_regions``: the heatmap sizes at which AOPC's full-forward path is timed beside the incremental one (at
# 224 px on a CPU only the smallest: the full path of VGG19 at 14x14 takes minutes per image there, and the bound
# is its yardstick at every size). ``loop_images``: the images the per-image loops run on.
SETTINGS = {
    "quick": {"archs": ("resnet18", "vgg11"), "input_size": 64, "small_input": True, "variant": "intact",
              "images": 4, "loop_images": 2, "repeats": 3, "chunks": DEFAULT_CHUNKS, "regions": QUICK_REGIONS,
              "full_regions": QUICK_REGIONS, "sensitivity": QUICK_SENSITIVITY, "compare_regions": 4},
    "full224": {"archs": ("vgg19", "resnet50"), "input_size": 224, "small_input": False,
                "variant": "thesis", "images": 2, "loop_images": 1, "repeats": 1, "chunks": CPU_224_CHUNKS,
                "regions": TABLE5_REGIONS, "full_regions": (4,), "sensitivity": QUICK_SENSITIVITY,
                "compare_regions": 4},
    "full": {"archs": ("resnet34", "resnet50", "vgg19"), "input_size": 224, "small_input": False,
             "variant": "thesis", "images": 16, "loop_images": 4, "repeats": 3, "chunks": DEFAULT_CHUNKS,
             "regions": TABLE5_REGIONS, "full_regions": TABLE5_REGIONS, "sensitivity": TABLE6_SENSITIVITY,
             "compare_regions": 8},
}
DEVICE_SETTINGS = {"cpu": "quick", "cuda": "full"}  # the preset of each device when --setting is not given

# The crossover table: where incremental AOPC pays off, by input size and heatmap size, from short measurements
# (a forward pass of a chunk, and the incremental path over CROSSOVER_STEPS and one step) on CROSSOVER_IMAGES images.
CROSSOVER_SIZES = (64, 128, 224)
CROSSOVER_REGIONS = (4, 8, 14)
CROSSOVER_STEPS = 9
CROSSOVER_IMAGES = 2

GPU_MEMORY = 16 * 2**30  # the GPU the memory estimate is for (a 16 GB V100, as in the original study)
NUM_CLASSES = BENCHMARK_CLASSES  # every network of the benchmark
# What aopc holds per image of the batch passed in, at 224 px: the image and its noise (3 x float32),
# the removal step of every pixel (int64) and the map (float32).
AOPC_INPUT_BYTES_224 = (2 * 3 * 4 + 8 + 4) * 224 * 224

# The timings the original study reports on a V100 (seconds per image), kept in every result file.
ORIGINAL_STUDY_TIMINGS = {"aopc_14x14_s_per_image_v100": 2.2, "max_sensitivity_s_per_image_v100_up_to": 1.2}
