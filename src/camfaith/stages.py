"""From the feature grid to the pixels: how much of the gap between maps that feature deletion proves survives
the steps input-space AOPC adds.

Feature deletion (:mod:`camfaith.metrics.feature_deletion`) scores a raw map on the target layer's own grid,
where HiResCAM's order is provably the best on a one-Linear Flatten head. AOPC, as the original study runs it,
adds four steps: the ReLU and min-max scaling of the displayed map, its upsampling to the image, removal in
pixel space through the whole network, and the class probability in place of the logit. Each stage below adds
one step and scores every map again on the same images, so that the change between neighbouring stages is
that step's alone:

1. ``raw``: the signed map on the feature grid (feature deletion itself);
2. ``relu-minmax``: the library's ReLU and min-max scaling, still on the grid (locations at 0 become ties,
   ordered at random);
3. ``upsampled``: that map upsampled bilinearly to the image and averaged back over the grid's cells;
4. ``pixels, logit``: AOPC with one cell per feature location (the order of stage 3) and removal in pixel
   space, tracking the logit;
5. ``pixels, probability``: the same, tracking the class probability, AOPC's score.

Stages 1 to 4 measure drops of the same logit with the same ``1/(L + 1)`` normalisation, so their
differences between maps are comparable; stage 5 is in probability.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from camfaith.cams import min_max
from camfaith.metrics import feature_deletion
from camfaith.multiverse import render
from camfaith.scoring import aopc_scores
from camfaith.seeds import stream_seed

STAGES = ("raw", "relu-minmax", "upsampled", "pixels, logit", "pixels, probability")


def deletion_stages(model: nn.Module, activations: torch.Tensor, images: torch.Tensor, ids: Sequence[str],
                    raw: dict[str, torch.Tensor], targets: torch.Tensor, seed: int, perturbation="uniform",
                    chunk_size: int = 64) -> pd.DataFrame:
    """Per image, map and stage (:data:`STAGES`), the deletion score (higher is better): columns ``id, method,
    stage, score``.

    ``activations`` are the target layer's (``N, F, D1, D2``, ``D1 = D2``) and ``raw`` the signed maps on
    that grid. Ties on the grid are broken by the run's tie-break stream, as the family chapter's feature
    deletion does, and the pixel stages use AOPC's draws for ``seed``, so stage 1 equals that chapter's
    feature deletion and stage 5 its AOPC at one cell per location.
    """
    height, width = activations.shape[-2:]
    if height != width:
        raise ValueError(f"the stages need a square feature grid to match AOPC's cells, got {height} x {width}")
    shown = {m: min_max(values.clamp(min=0)) for m, values in raw.items()}
    upsampled = {m: render(values, tuple(images.shape[-2:])) for m, values in raw.items()}
    pooled = {m: F.adaptive_avg_pool2d(values[:, None], (height, width))[:, 0] for m, values in upsampled.items()}
    frames = []
    for stage, maps in zip(STAGES[:3], (raw, shown, pooled)):
        for method, values in maps.items():
            ties = torch.Generator().manual_seed(stream_seed(seed, "tie break"))
            scores = feature_deletion(model.head, activations, values, targets, ties).scores
            frames.append(pd.DataFrame({"id": list(ids), "method": method, "stage": stage,
                                        "score": scores.cpu().numpy()}))
    for stage, score in zip(STAGES[3:], ("logit", "probability")):
        frame, _ = aopc_scores(model, images, ids, upsampled, [height], targets, seed, perturbation,
                               chunk_size=chunk_size, score=score)
        frames.append(frame[["id", "method", "aopc"]].rename(columns={"aopc": "score"}).assign(stage=stage))
    return pd.concat(frames, ignore_index=True)


def stage_gaps(frame: pd.DataFrame) -> pd.DataFrame:
    """Per stage of a :func:`deletion_stages` frame, HiResCAM minus Grad-CAM averaged over the images
    (``difference``) and the share of the first stage's gap that remains (``share``; the logit stages only)."""
    pair = frame[frame["method"].isin(["gradcam", "hirescam"])]
    wide = pair.pivot_table(index=["stage", "id"], columns="method", values="score")
    difference = (wide["hirescam"] - wide["gradcam"]).groupby(level="stage").mean().reindex(list(STAGES))
    share = difference / difference["raw"]
    share["pixels, probability"] = np.nan  # another unit
    return pd.DataFrame({"difference": difference, "share": share}).rename_axis("stage")
