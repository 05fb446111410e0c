"""Training recipes, one module per task: `classification` (MedMNIST, chapter 01), `volumes`
(3D MedMNIST, chapter 02), `autoencoders` (autoencoders, denoisers, VAEs, rotation prediction;
chapter 03) and `segmentation` (DSB2018-96, DRIVE, folders; chapter 05)."""
