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
# # Training: {run}
#
# The networks of the study end in *Conv → Flatten → class scores*, the setting of Proposition 4.
# This chapter trains one of them with the recipe of section 4.2 of Lamprou (2023) (weighted
# cross-entropy, Adam, early stopping on validation loss and the recall of the monitored classes) and
# reports the test-set scores of its Table 4.

# %% [markdown]
# ```{glue:figure} train_history_fig
# Loss per epoch and validation balanced accuracy. The weights kept are those of the best epoch.
# ```
#
# The parameters, with their defaults; the values the pipeline set for this chapter follow in the cell
# that papermill injects.

# %% tags=["parameters"]
dataset = "synthetic"  # a name of camfaith.data.DATASETS
arch = "vgg11"  # a name of camfaith.models.ARCHITECTURES
input_size = 32  # pixels
small_input = True  # remove early downsampling so the target map stays at least 7x7
stages = 3  # convolutional stages kept (ResNet layer1-4, VGG blocks 1-5); 0 keeps all
variant = "intact"  # intact, or thesis for the stripping of section 4.2 of the original study
weights = ""  # torchvision weights name such as IMAGENET1K_V1; empty for random initialisation
dataset_options = {}  # extra loader options, e.g. {"variant": "colour"}; see camfaith.parameters.parse_options
data_root = ""  # empty: read $CAMFAITH_DATA, default ./data
run_dir = "results/scratch/synthetic_vgg11"  # the run folder: settings, checkpoints, reports, scores
device = "auto"  # auto, cpu or cuda
seed = 0  # splits, test sample and metric noise; also the training's unless train_seed is set
train_seed = -1  # initial weights and shuffling; -1 uses seed (replicates of a run differ here only)
replicate_of = ""  # the run this one replicates with another train_seed; empty for none
epochs = 6
batch_size = 64
lr = 1e-3
weight_decay = 0.0
scheduler_step = 0  # StepLR period in epochs; 0 for none
scheduler_gamma = 0.5
patience = 3  # 0 for no early stopping
trainable_layers = "all"  # as in Table 3 (layer3,layer4 or features.19-34), none, or all
progress = True  # progress bars; the pipeline turns them off for the book
normal_classes = []  # classes not monitored for early stopping, ["Normal"] for Covid-19
precision = "float32"  # float32, or bfloat16 (CUDA autocast) for the forward passes of training
channels_last = False  # the channels_last memory format (faster convolutions on a GPU)

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import pandas as pd
import torch
from myst_nb import glue

from camfaith.device import resolve_device
from camfaith.evaluate import classification_report, confusion_frame, predict
from camfaith.parameters import check_positive_integers, parse_list
from camfaith.plots import format_table, history_curves
from camfaith.runs import Run
from camfaith.train import TrainConfig, train

check_positive_integers(epochs=epochs, batch_size=batch_size)
device = resolve_device(device)
settings = dict(dataset=dataset, arch=arch, input_size=input_size, seed=seed, dataset_options=dataset_options,
                data_root=data_root, train_seed=seed if train_seed < 0 else train_seed, replicate_of=replicate_of)
splits = Run(folder=run_dir, **settings).load_splits(augment=True)  # checks the settings first
format_table(pd.DataFrame({"split": ["train", "validation", "test"],
                           "images": [len(splits.train), len(splits.val), len(splits.test)]}).set_index("split").T)

# %% [markdown]
# The network and its target layer; the run's settings and split manifest are saved beside the
# checkpoints so the run can be audited and repeated.

# %% tags=["hide-input"]
spec = dict(arch=arch, num_classes=splits.num_classes, head="flatten", input_size=input_size, variant=variant,
            small_input=bool(small_input), stages=stages or None)
run = Run.create(run_dir, **settings, model=spec)  # the checkpoint holds the trained weights
torch.manual_seed(run.train_seed)  # the initial weights: a killed run resumes only with the same ones
model, target_layer = run.build_model(weights=weights or None)
run.save_manifest(splits)
print(model.theory, "| target map:", model.feature_shape, "| removed:", model.removed_downsampling or "nothing")

# %% tags=["hide-input"]
config = TrainConfig(
    lr=lr, weight_decay=weight_decay or None, batch_size=batch_size, epochs=epochs,
    scheduler_step=scheduler_step or None, scheduler_gamma=scheduler_gamma if scheduler_step else None,
    patience=patience or None, trainable_layers=trainable_layers,
    normal_classes=tuple(parse_list(normal_classes, str, allow_empty=True)), seed=run.train_seed,
    precision=precision, channels_last=bool(channels_last),
)
result = train(model, splits, config, run.folder, device=device, progress=bool(progress))
fig = history_curves(result.history)
glue("train_history_fig", fig, display=False)
plt.close(fig)
print(f"best epoch {result.best_epoch}; stopped early: {result.stopped_early}; "
      f"resumed after epoch {result.resumed_from_epoch}")

# %% [markdown]
# ## Test-set scores (as in Table 4 of the original study)

# %% tags=["hide-input"]
probabilities, labels, ids = predict(model, splits.test, device=device, batch_size=batch_size)
report = classification_report(probabilities, labels, splits.classes)
run.save_report(report)
scores = pd.Series({key: report[key] for key in
                    ("balanced_accuracy", "precision_weighted", "recall_weighted", "f1_weighted", "mean_auc")})
format_table(scores.to_frame("test"), 3)

# %% tags=["hide-input"]
format_table(confusion_frame(report))
