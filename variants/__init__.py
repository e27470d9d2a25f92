"""The LSTM variant factory: the peephole LSTM of Greff et al. and its ablations.

    >>> import variants
    >>> lstm = variants.build("CIFG", input_size=39, hidden_size=100, bidirectional=True)
    >>> out, (y_T, c_T) = lstm(x)            # x: [T, B, 39], as torch.nn.LSTM

Pure PyTorch; knows nothing of benchmarks or studies.
"""

from .layer import VariantLSTM, build
from .spec import PAPER_VARIANTS, PRESETS, Spec, register, resolve

__all__ = ["PAPER_VARIANTS", "PRESETS", "Spec", "VariantLSTM", "build", "register", "resolve"]
