"""Figures, one module per topic: data (montages, slice grids), classification (curves, ROC,
confusion, reliability, galleries), volumes (chapter 02), autoencoders (image rows, score
histograms; chapter 03), segmentation (overlays)."""
