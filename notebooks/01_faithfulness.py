# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The propositions, checked numerically
#
# Each proposition of the theory chapter says that a map adds up to the class score minus the bias.
# Here we build real torchvision networks in every setting of Table 1, explain the predicted class of
# a few random images, and measure how far each sum is from the score.

# %% tags=["parameters", "remove-cell"]
archs = "resnet18,vgg11"  # comma-separated architectures of camfaith.build_model
input_size = 64  # pixels; small_input keeps the target map at least 7x7
n_images = 4  # random images per setting
seed = 0
tolerance = 1e-4  # relative residual below which an identity "holds" (float32)

# %%
import matplotlib.pyplot as plt
import pandas as pd
import torch
from myst_nb import glue

import camfaith
from camfaith.models import ARCHITECTURES
from camfaith.parameters import check_choice, check_positive_integers, parse_list
from camfaith.plots import residual_bars
from camfaith.theory import randomize_offsets

arch_list = parse_list(archs, str)
for arch in arch_list:
    check_choice("arch", arch, ARCHITECTURES)
check_positive_integers(input_size=input_size, n_images=n_images)

# %% [markdown]
# The networks have random weights; their BatchNorm layers and biases get random offsets too, as
# training would give them. Without offsets a ReLU network is positively homogeneous and the HiResCAM
# sum would equal the score at *every* layer, hiding what Table 1 predicts.

# %%
tables = []
for arch in arch_list:
    table = camfaith.table1(arch, input_size=input_size, n_images=n_images, seed=seed, tolerance=tolerance)
    tables.append(table.assign(arch=arch))
measured = pd.concat(tables, ignore_index=True)
shown = measured[["arch", "structure", "target layer", "Grad-CAM sums to score", "HiResCAM sums to score",
                  "equivalent", "gradcam_residual", "hirescam_residual"]]
glue("faith_table1", shown.style.format({"gradcam_residual": "{:.1e}", "hirescam_residual": "{:.1e}"})
     .hide(axis="index"))

# %%
fig = residual_bars(measured, tolerance)
glue("faith_residuals_fig", fig)
plt.close(fig)


# %% [markdown]
# Per image, the residual of each proposition on the two heads of interest, GAP (Propositions 1-3)
# and Flatten (Proposition 4), both explained at the last block.

# %%
def per_image(arch, head):
    torch.manual_seed(seed)
    model, target = camfaith.build_model(arch, 5, head=head, input_size=input_size, small_input=True)
    randomize_offsets(model, torch.Generator().manual_seed(seed))
    images = torch.randn(n_images, 3, input_size, input_size, generator=torch.Generator().manual_seed(seed + 1))
    return camfaith.identity_residuals(model, target, images).assign(arch=arch, head=head)


residuals = pd.concat([per_image(arch, head) for arch in arch_list for head in ("gap", "flatten")])
gap, flatten = residuals[residuals["head"] == "gap"], residuals[residuals["head"] == "flatten"]
glue("faith_arch", ", ".join(arch_list), display=False)
glue("faith_n_images", int(n_images), display=False)
glue("faith_prop1_residual", float(gap["cam_residual"].max()), display=False)
glue("faith_prop2_residual", float(gap["gradcam_vs_cam"].max()), display=False)
glue("faith_prop3_residual", float(gap["hirescam_vs_cam"].max()), display=False)
glue("faith_prop4_hirescam_residual", float(flatten["hirescam_residual"].max()), display=False)
glue("faith_prop4_gradcam_residual", float(flatten["gradcam_residual"].min()), display=False)
residuals[["arch", "head", "score", "bias", "cam_sum", "gradcam_sum", "hirescam_sum",
           "cam_residual", "gradcam_residual", "hirescam_residual"]].round(6)
