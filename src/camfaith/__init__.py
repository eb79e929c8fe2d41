"""camfaith: are faithful class-activation maps also the better ones?

The helper package of the report: model surgery, Grad-CAM, HiResCAM and the rest of the CAM family, the
propositions as checks, the evaluation metrics and the controls that validate them, the data, the training,
the run folders and the summary.
"""

from camfaith.cams import cams, explain, explainer
from camfaith.data import DATASETS, DatasetSplits, load_dataset
from camfaith.endpoints import METRICS, answers
from camfaith.evaluate import classification_report, predict
from camfaith.family import FAMILY, family_maps
from camfaith.metrics import aopc, feature_deletion, ha_images, haas, max_sensitivity, occlusion_maps, relevance_mass
from camfaith.models import ARCHITECTURES, build_model
from camfaith.runs import Run
from camfaith.stats import compare_methods, paired_comparison
from camfaith.summary import collect
from camfaith.theory import identity_residuals, table1
from camfaith.train import TrainConfig

__all__ = [
    "ARCHITECTURES",
    "DATASETS",
    "DatasetSplits",
    "FAMILY",
    "METRICS",
    "Run",
    "TrainConfig",
    "answers",
    "aopc",
    "build_model",
    "cams",
    "classification_report",
    "collect",
    "compare_methods",
    "explain",
    "explainer",
    "family_maps",
    "feature_deletion",
    "ha_images",
    "haas",
    "identity_residuals",
    "load_dataset",
    "max_sensitivity",
    "occlusion_maps",
    "paired_comparison",
    "predict",
    "relevance_mass",
    "table1",
]
