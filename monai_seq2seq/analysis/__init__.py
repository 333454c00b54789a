"""Analysis: differentiation maps, adjacency matrix, degree centrality and ranking, figures."""

from .advice import Advice, CohortAdjacency, advise_subject
from .advice_engine import AdviceEvaluator, AdviceWriter
from .calibration import uncertainty_calibration
from .centrality import HIGHER_IS_BETTER, SequenceRanking, rank_sequences
from .dicom_output import DifferentiationDicomWriter, overlay_rgb
from .engine import DifferentiationEvaluator, DifferentiationWriter, MetricsTableWriter
from .figures import plot_adjacency, plot_overlays, plot_ranks
from .maps import differentiation_map
from .metrics import masked_ssim, synthesis_scores
from .mimics import MIMIC_CHECKS, evaluator_mimic_aucs, mimic_aucs, region_auc
from .perceptual import LPIPSStatus, load_lpips
from .subject import SubjectAnalysis, analyse_subject, cohort_ranking

__all__ = [
    "Advice",
    "AdviceEvaluator",
    "AdviceWriter",
    "CohortAdjacency",
    "advise_subject",
    "uncertainty_calibration",
    "DifferentiationDicomWriter",
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
    "MIMIC_CHECKS",
    "evaluator_mimic_aucs",
    "mimic_aucs",
    "region_auc",
    "overlay_rgb",
    "synthesis_scores",
    "differentiation_map",
    "plot_adjacency",
    "plot_overlays",
    "plot_ranks",
    "rank_sequences",
]
