"""Metrics: classification (ACC/AUC as MedMNIST reports them, calibration, CIs), segmentation,
image quality (PSNR, SSIM)."""
