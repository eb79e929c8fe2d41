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
# it is negative (eq. 9 of Lamprou 2023), and divides the accuracy on these HA images by the accuracy
# on the originals (eq. 10). Above 1 the map helps the model: **higher is better**. How the map
# becomes an attribution in [-1, 1] is a choice the metric hides; we show three.

# %% tags=["parameters", "remove-cell"]
run_dir = "results/scratch/synthetic_vgg11"  # a run folder written by the training chapter
device = "auto"  # auto, cpu or cuda
n_images = 32  # test images scored
scalings = "unit,centered,signed"  # unit: the CAM in [0, 1] as is; centered: 2a-1; signed: raw map over its max
n_examples = 4  # HA images shown

# %%
import matplotlib.pyplot as plt
import pandas as pd
from myst_nb import glue

from camfaith import haas
from camfaith.cams import METHODS, explain
from camfaith.device import model_device
from camfaith.metrics import ATTRIBUTION_SCALINGS, ha_attribution, ha_images
from camfaith.parameters import check_choice, check_positive_integers, parse_list
from camfaith.plots import METHOD_LABELS, image_rows
from camfaith.runs import Run

check_positive_integers(n_images=n_images, n_examples=n_examples)
scaling_list = parse_list(scalings, str)
for scaling in scaling_list:
    check_choice("scaling", scaling, ATTRIBUTION_SCALINGS)
run = Run.open(run_dir)
model, target_layer = run.trained_model(device)
splits = run.load_splits()
images, labels, ids = run.test_images(splits, n_images, model_device(model))

# %% [markdown]
# The maps explain the predicted class. The signed scaling needs the raw maps at the target layer,
# which come from the same single pass.

# %%
maps = explain(model, target_layer, images, raw=True)
rows, per_image = [], []
for scaling in scaling_list:
    for method in METHODS:
        source = maps[f"raw_{method}" if scaling == "signed" else method]
        result = haas(model, images, labels, source, attribution_scaling=scaling)
        rows.append({"scaling": scaling, "method": method, "accuracy": float(result.accuracy),
                     "ha_accuracy": float(result.ha_accuracy), "haas": float(result.score)})
        per_image += [{"id": i, "scaling": scaling, "method": method, "label": int(y), "prediction": int(p),
                       "ha_prediction": int(q)}
                      for i, y, p, q in zip(ids, labels, result.predictions, result.ha_predictions)]
scores = pd.DataFrame(rows)
run.save_scores("haas", pd.DataFrame(per_image))
table = scores.pivot(index="scaling", columns="method", values="haas").rename(columns=METHOD_LABELS)
glue("haas_table", table.round(4), display=False)
unit = scores.query("scaling == 'unit'").set_index("method")["haas"]
for method in unit.index:
    glue(f"haas_unit_{method}", float(unit[method]), display=False)
scores.round(4)

# %% [markdown]
# Examples of HA images (Figure 20 of the original study): the originals, then the images each
# method's map produces under the first scaling.

# %%
shown = slice(0, min(n_examples, len(images)))
rows = {"original": images[shown]}
for method in METHODS:
    source = maps[f"raw_{method}" if scaling_list[0] == "signed" else method]
    attribution = ha_attribution(source[shown], images.shape[-2:], scaling_list[0])
    rows[f"HA, {METHOD_LABELS[method]}"] = ha_images(images[shown], attribution)
fig = image_rows(rows, titles=[splits.classes[int(y)] for y in labels[shown]])
glue("haas_examples_fig", fig)
plt.close(fig)
