"""The LSTM variant factory: the peephole LSTM of Greff et al., its ablations, and the
gated-RNN family beside it (GRU, MGU, minGRU, minLSTM, sLSTM).

    >>> import variants
    >>> lstm = variants.build("CIFG", input_size=39, hidden_size=100, bidirectional=True)
    >>> out, (y_T, c_T) = lstm(x)            # x: [T, B, 39], as torch.nn.LSTM

Pure PyTorch; knows nothing of benchmarks or studies.
"""

from .factory import build
from .family import FamilyRNN, forget_biases
from .layer import VariantLSTM
from .spec import FAMILY, PAPER_VARIANTS, PRESETS, Spec, register, resolve

__all__ = [
    "FAMILY",
    "PAPER_VARIANTS",
    "PRESETS",
    "FamilyRNN",
    "Spec",
    "VariantLSTM",
    "build",
    "forget_biases",
    "register",
    "resolve",
]
