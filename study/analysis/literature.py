"""What the literature claims about the cells beyond the paper's nine (docs/family.md), as
data: the report's family section (`family.py`) tests each claim on a study's trials and
says whether the study agrees, as `paper.py`'s findings are for the paper's variants.

Each claim compares two arms (study names: 'V' is the LSTM of the claim, a vanilla peephole
LSTM as in Greff et al.) and expects the first to be BETTER than the second, or NOT_WORSE
(the authors' "comparable" or "competitive": a better result is no evidence against it).
The published numbers, where there are any, are each a single hand-tuned network, not the
best 10 % of a random search."""

from __future__ import annotations

from dataclasses import dataclass

BETTER, NOT_WORSE = "better", "not worse"


@dataclass(frozen=True)
class Claim:
    source: str  # authors and year
    title: str
    arm: str  # the arm the claim is about ...
    against: str  # ... compared with this one
    expects: str  # BETTER or NOT_WORSE: the arm against `against`
    says: str  # what the authors report, in words


CLAIMS = (
    Claim(
        "Chung et al. 2014",
        "Empirical Evaluation of Gated Recurrent Neural Networks on Sequence Modeling",
        "GRU",
        "V",
        BETTER,
        "JSB test NLL 8.54 for the GRU against 8.67 for the LSTM, one hand-tuned network "
        "each; the authors call the two comparable",
    ),
    Claim(
        "Jozefowicz et al. 2015",
        "An Empirical Exploration of Recurrent Network Architectures",
        "V-fb1",
        "V",
        BETTER,
        "a forget-gate bias of 1 improves the LSTM",
    ),
    Claim(
        "Jozefowicz et al. 2015",
        "An Empirical Exploration of Recurrent Network Architectures",
        "V-fb1",
        "GRU",
        NOT_WORSE,
        "with a forget-gate bias of 1 the LSTM closes most of its gap to the GRU",
    ),
    Claim(
        "Zhou et al. 2016",
        "Minimal Gated Unit for Recurrent Neural Networks",
        "MGU",
        "GRU",
        NOT_WORSE,
        "accuracy comparable with the GRU's, with fewer parameters",
    ),
    Claim(
        "Feng et al. 2024",
        "Were RNNs All We Needed?",
        "minGRU",
        "V",
        NOT_WORSE,
        "competitive with the LSTM; never measured on JSB",
    ),
    Claim(
        "Feng et al. 2024",
        "Were RNNs All We Needed?",
        "minLSTM",
        "V",
        NOT_WORSE,
        "competitive with the LSTM; never measured on JSB",
    ),
    Claim(
        "Beck et al. 2024",
        "xLSTM: Extended Long Short-Term Memory",
        "sLSTM",
        "V",
        NOT_WORSE,
        "competitive with the LSTM; never measured on JSB",
    ),
)
