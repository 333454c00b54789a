"""Analysis: differentiation maps, adjacency matrix, degree centrality and ranking, figures."""

from .centrality import HIGHER_IS_BETTER, SequenceRanking, rank_sequences
from .figures import plot_adjacency, plot_overlays, plot_ranks
from .maps import differentiation_map

__all__ = [
    "HIGHER_IS_BETTER",
    "SequenceRanking",
    "differentiation_map",
    "plot_adjacency",
    "plot_overlays",
    "plot_ranks",
    "rank_sequences",
]
