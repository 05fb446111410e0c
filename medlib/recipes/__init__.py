"""Training recipes, one module per task: `classification` (MedMNIST, chapter 01) and
`segmentation` (DSB2018-96, DRIVE, folders; chapter 05)."""
