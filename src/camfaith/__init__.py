"""camfaith: are faithful class-activation maps also the better ones?

The helper package of the report: model surgery, Grad-CAM and HiResCAM, the propositions as checks,
the evaluation metrics, the data and the training.
"""

from camfaith.cams import cams, explainer
from camfaith.data import DATASETS, DatasetSplits, load_dataset
from camfaith.evaluate import classification_report, predict
from camfaith.metrics import aopc, ha_images, haas, max_sensitivity, relevance_mass
from camfaith.models import ARCHITECTURES, build_model
from camfaith.stats import compare_methods, paired_comparison
from camfaith.theory import identity_residuals, table1
from camfaith.train import TrainConfig

__all__ = [
    "ARCHITECTURES",
    "DATASETS",
    "DatasetSplits",
    "TrainConfig",
    "aopc",
    "build_model",
    "cams",
    "classification_report",
    "compare_methods",
    "explainer",
    "ha_images",
    "haas",
    "identity_residuals",
    "load_dataset",
    "max_sensitivity",
    "paired_comparison",
    "predict",
    "relevance_mass",
    "table1",
]
