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
# # HAAS: {run}
#
# HAAS feeds the model images whose pixels were emphasised where the map is positive and damped where
# it is negative (seed eq. 9), and divides the accuracy on these HA images by the accuracy on the
# originals (eq. 10). Above 1 the map helps the model: **higher is better**. How the map becomes an
# attribution in [-1, 1] is a choice the metric hides; we show three.

# %% tags=["parameters", "remove-cell"]
dataset = "synthetic"
arch = "vgg11"
input_size = 32
data_root = ""
dataset_options = ""
run_dir = "results/scratch/synthetic_vgg11"
device = "auto"
seed = 0
n_images = 32
scalings = "unit,centered,signed"  # unit: the CAM in [0, 1] as is; centered: 2a-1; signed: raw map over its max
n_examples = 4  # HA images shown

# %%
import matplotlib.pyplot as plt
import pandas as pd
import torch
from myst_nb import glue

from camfaith import cams, haas
from camfaith.cams import METHODS
from camfaith.metrics import ATTRIBUTION_SCALINGS, ha_attribution, ha_images
from camfaith.plots import METHOD_LABELS, image_rows
from camfaith.study import check_choice, check_parameters, open_run, save_results

check_parameters(dataset, arch, input_size=input_size, n_images=n_images, n_examples=n_examples)
scaling_list = [s.strip() for s in scalings.split(",") if s.strip()]
for scaling in scaling_list:
    check_choice("scaling", scaling, ATTRIBUTION_SCALINGS)
model, target_layer, splits, images, labels, ids = open_run(run_dir, dataset, input_size, seed, n_images, data_root,
                                                            dataset_options, device)

# %% [markdown]
# The maps explain the predicted class. The signed scaling needs the raw maps at the target layer,
# which come from the same single pass.

# %%
maps, raw = {}, {}
for start in range(0, len(images), 32):
    batch = images[start:start + 32]
    processed, signed = cams(model, target_layer, batch), cams(model, target_layer, batch, raw=True)
    for method in METHODS:
        maps.setdefault(method, []).append(processed[method])
        raw.setdefault(method, []).append(signed[method])
maps = {m: torch.cat(v) for m, v in maps.items()}
raw = {m: torch.cat(v) for m, v in raw.items()}

rows, per_image = [], []
for scaling in scaling_list:
    for method in METHODS:
        source = raw[method] if scaling == "signed" else maps[method]
        result = haas(model, images, labels, source, attribution_scaling=scaling)
        rows.append({"scaling": scaling, "method": method, "accuracy": float(result.accuracy),
                     "ha_accuracy": float(result.ha_accuracy), "haas": float(result.score)})
        per_image += [{"id": i, "scaling": scaling, "method": method, "label": int(y), "prediction": int(p),
                       "ha_prediction": int(q)}
                      for i, y, p, q in zip(ids, labels, result.predictions, result.ha_predictions)]
scores = pd.DataFrame(rows)
save_results(pd.DataFrame(per_image), run_dir, "haas")
table = scores.pivot(index="scaling", columns="method", values="haas").rename(columns=METHOD_LABELS)
glue("haas_table", table.round(4), display=False)
glue("haas_unit_gradcam", float(scores.query("scaling == 'unit' and method == 'gradcam'")["haas"].squeeze()), display=False)
glue("haas_unit_hirescam", float(scores.query("scaling == 'unit' and method == 'hirescam'")["haas"].squeeze()), display=False)
scores.round(4)

# %% [markdown]
# Examples of HA images (the seed's Figure 20): the originals, then the images each method's map
# produces under the default scaling.

# %%
shown = slice(0, min(n_examples, len(images)))
rows = {"original": images[shown]}
for method in METHODS:
    attribution = ha_attribution(maps[method][shown], images.shape[-2:], scaling_list[0])
    rows[f"HA, {METHOD_LABELS[method]}"] = ha_images(images[shown], attribution)
fig = image_rows(rows, titles=[splits.classes[int(y)] for y in labels[shown]])
glue("haas_examples_fig", fig)
plt.close(fig)
