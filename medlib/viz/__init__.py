"""Figures, one module per topic: data (montages, slice grids), classification (curves, ROC,
confusion, reliability, galleries), segmentation (overlays)."""
