"""Pure numpy/astropy analysis shared by the dashboard and the REST API.

Nothing here imports Panel or Bokeh, and nothing knows where an image came from.
"""

from components.core.geometry import (
    LineProfile,
    line_profile,
    pixel_to_relative,
    relative_span,
    relative_to_pixel,
    subregion,
    subregion_slices,
)
from components.core.stats import histogram_clipped, statistics

__all__ = [
    "LineProfile",
    "line_profile",
    "relative_to_pixel",
    "pixel_to_relative",
    "relative_span",
    "subregion",
    "subregion_slices",
    "statistics",
    "histogram_clipped",
]
