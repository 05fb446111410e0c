"""Datasets: the MedMNIST registry and loader, segmentation sets, synthetic data, augmentation,
noise models (chapter 03)."""
