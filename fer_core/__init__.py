"""fer_core: FER2013 data, models, training, evaluation and interpretability (no Streamlit)."""
__version__ = "0.1.0"

from .checkpoint import CheckpointError, load_model, read_checkpoint  # noqa: E402
from .data import FaceSet, class_counts, load_split  # noqa: E402
from .images import DataError, open_image, to_face48  # noqa: E402
from .inference import predict_logits, predict_proba  # noqa: E402
from .models import count_parameters, create_model, list_models  # noqa: E402
from .sources import CLASSES  # noqa: E402

__all__ = [
    "CLASSES", "CheckpointError", "DataError", "FaceSet", "class_counts", "count_parameters", "create_model",
    "list_models", "load_model", "load_split", "open_image", "predict_logits", "predict_proba", "read_checkpoint",
    "to_face48",
]
