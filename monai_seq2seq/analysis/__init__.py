"""Analysis: differentiation maps, adjacency matrix, degree centrality and ranking, figures."""

from .centrality import HIGHER_IS_BETTER, SequenceRanking, rank_sequences
from .engine import DifferentiationEvaluator, DifferentiationWriter, MetricsTableWriter
from .figures import plot_adjacency, plot_overlays, plot_ranks
from .maps import differentiation_map
from .metrics import masked_ssim, synthesis_scores
from .perceptual import LPIPSStatus, load_lpips
from .subject import SubjectAnalysis, analyse_subject, cohort_ranking

__all__ = [
    "DifferentiationEvaluator",
    "DifferentiationWriter",
    "MetricsTableWriter",
    "HIGHER_IS_BETTER",
    "LPIPSStatus",
    "SequenceRanking",
    "SubjectAnalysis",
    "analyse_subject",
    "cohort_ranking",
    "load_lpips",
    "masked_ssim",
    "synthesis_scores",
    "differentiation_map",
    "plot_adjacency",
    "plot_overlays",
    "plot_ranks",
    "rank_sequences",
]
