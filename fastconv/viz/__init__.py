"""Understanding a trained CNN: filters, activations, top-k images, receptive fields, t-SNE of CNN
codes, occlusion, saliency, class models and deconvnet reconstructions.

Every method returns numpy arrays; each ``plot_*`` returns a matplotlib Figure. matplotlib and
scikit-learn are optional (``pip install "fastconv[viz]"``) and imported only when needed.
"""
from .activations import DeadReLUMonitor, activations, dead_relu_report, plot_activations
from .class_model import class_model, plot_class_model
from .command import demo_figures
from .deconv import deconv_reconstruction, plot_deconv
from .embedding import Embedding, cnn_codes, plot_tsne, plot_tsne_mosaic, tsne_codes, tsne_mosaic
from .filters import filters, plot_filters
from .occlusion import occlusion, occlusion_pixels, plot_occlusion
from .plotting import save_figure
from .receptive_field import ReceptiveField, receptive_field
from .saliency import plot_saliency, saliency
from .topk import TopK, plot_top_k, top_k

__all__ = [
    "filters", "plot_filters", "activations", "plot_activations", "dead_relu_report", "DeadReLUMonitor",
    "top_k", "TopK", "plot_top_k", "receptive_field", "ReceptiveField", "cnn_codes", "tsne_codes", "Embedding",
    "plot_tsne", "tsne_mosaic", "plot_tsne_mosaic", "occlusion", "occlusion_pixels", "plot_occlusion",
    "saliency", "plot_saliency", "class_model", "plot_class_model", "deconv_reconstruction", "plot_deconv",
    "save_figure", "demo_figures",
]
