"""camfaith: are faithful class-activation maps also the better ones?

The helper package of the report: model surgery, Grad-CAM and HiResCAM, the propositions as checks,
the evaluation metrics, the data and the training.
"""

from camfaith.cams import cams, explainer
from camfaith.metrics import aopc, ha_images, haas, max_sensitivity
from camfaith.models import build_model
from camfaith.theory import identity_residuals, table1

__all__ = [
    "aopc",
    "build_model",
    "cams",
    "explainer",
    "ha_images",
    "haas",
    "identity_residuals",
    "max_sensitivity",
    "table1",
]
