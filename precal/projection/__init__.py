"""Pre- vs post-calibration feature maps in one aligned 2-D space: the method (``method``: fitting,
placing new points, neighbourhood scores) and its memory and disk cache (``cache``)."""

from precal.projection.cache import cache_key, cached_projection, clear_memory_cache
from precal.projection.method import METHODS, Projection, fit_projection, knn_place, neighbourhood_scores

__all__ = ["METHODS", "Projection", "cache_key", "cached_projection", "clear_memory_cache", "fit_projection",
           "knn_place", "neighbourhood_scores"]
