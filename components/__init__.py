"""QuickAnalysis components: ``core`` (pure numpy analysis), ``sources`` (image
stores, FITS decoding, cache) and ``views`` (Panel/HoloViews components)."""
