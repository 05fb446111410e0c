"""Handcrafted ("radiomics-style") features of 2D images and 3D volumes, to set beside a
network's features and to fuse with them (chapter 08).

Three families, as radiomics software groups them (IBSI, Zwanenburg et al. 2020):
- first order: the intensity histogram (mean, spread, skewness, kurtosis, percentiles,
  entropy, uniformity) — nothing about where the intensities are;
- shape: the foreground's size, boundary and elongation (the foreground is the image
  itself when it is a mask, as in AdrenalMNIST3D and VesselMNIST3D, else Otsu's threshold);
- texture: the grey-level co-occurrence matrix (GLCM, Haralick 1973) — how often level i
  sits next to level j at a given offset — and local binary patterns (LBP, Ojala 2002).

`glcm` is written out (any dimension, any offsets) and tested against scikit-image's
`graycomatrix`; `graycoprops`, `local_binary_pattern`, `regionprops` and `marching_cubes`
come from scikit-image. pyradiomics, the field's reference, is not used: the package
registry here offers only its source release, whose build fails on Python 3.11.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy import ndimage, stats
from skimage import feature, filters, measure

GLCM_PROPS = ("contrast", "dissimilarity", "homogeneity", "ASM", "correlation")
FAMILIES = ("first_order", "shape", "glcm", "lbp")


# ---------------------------------------------------------------- first order
def first_order(x: np.ndarray, bins: int = 32) -> dict[str, float]:
    """Intensity statistics of an image or volume (any shape; uint8 or float in [0, 255])."""
    v = np.asarray(x, dtype=np.float64).ravel()
    p = np.histogram(v, bins=bins, range=(0, 256))[0] / v.size  # IBSI: a fixed bin count
    nz = p[p > 0]
    sd = v.std()
    q10, q25, q50, q75, q90 = np.percentile(v, [10, 25, 50, 75, 90])
    return {
        "mean": v.mean(), "std": sd, "min": v.min(), "max": v.max(),
        "skewness": float(stats.skew(v)) if sd > 0 else 0.0,
        "kurtosis": float(stats.kurtosis(v)) if sd > 0 else 0.0,  # excess: 0 for a Gaussian
        "p10": q10, "median": q50, "p90": q90, "iqr": q75 - q25,
        "entropy": float(-(nz * np.log2(nz)).sum()), "uniformity": float((p**2).sum()),
    }


# ---------------------------------------------------------------- shape
def foreground(x: np.ndarray) -> np.ndarray:
    """The boolean foreground: the image itself if it has two values (a mask), else Otsu's
    threshold (the brighter side)."""
    x = np.asarray(x)
    values = np.unique(x)
    if len(values) <= 2:
        return x == values.max() if len(values) == 2 else np.zeros(x.shape, bool)
    return x > filters.threshold_otsu(x)


def shape(mask: np.ndarray) -> dict[str, float]:
    """Size, boundary and elongation of a 2D or 3D boolean mask (all components together).

    2D: area, perimeter (Crofton), compactness 4πA/P² (1 for a disc). 3D: volume, surface area (marching
    cubes mesh), sphericity π^(1/3)(6V)^(2/3)/A (1 for a ball). Both: number of components,
    extent (foreground / bounding box), solidity (foreground / convex hull), and elongation
    sqrt(λ_min / λ_max) of the inertia tensor (1 for round, → 0 for a line), and thickness: the
    largest and mean distance from a foreground pixel to the background and their ratio (a
    bulge on a tube, such as an aneurysm on a vessel, raises the ratio)."""
    m = np.asarray(mask, bool)
    if m.ndim not in (2, 3):
        raise ValueError(f"shape features need a 2D or 3D mask, got shape {m.shape}")
    names = (["area", "perimeter", "compactness"] if m.ndim == 2 else ["volume", "surface", "sphericity"]) + \
        ["components", "extent", "solidity", "elongation", "thickness_max", "thickness_mean", "thickness_ratio"]
    if not m.any():
        return dict.fromkeys(names, 0.0)
    n = measure.label(m, return_num=True)[1]  # connected components
    (rp,) = measure.regionprops(m.astype(np.uint8))  # all foreground as one region
    size = float(m.sum())
    if m.ndim == 2:  # Crofton's estimate: 1.6 % long on a disc of radius 20 (a pixel chain: 5 %)
        boundary = float(rp.perimeter_crofton)
        round_ = 4 * np.pi * size / boundary**2 if boundary > 0 else 1.0
    else:
        verts, faces, *_ = measure.marching_cubes(np.pad(m, 1).astype(np.float32), 0.5)
        boundary = float(measure.mesh_surface_area(verts, faces))
        round_ = np.pi ** (1 / 3) * (6 * size) ** (2 / 3) / boundary
    eig = np.clip(rp.inertia_tensor_eigvals, 0, None)
    try:
        solidity = float(rp.solidity)
    except (ValueError, RuntimeError):  # a flat region has no convex hull (qhull needs full dimension)
        solidity = 1.0
    depth = ndimage.distance_transform_edt(np.pad(m, 1))[m.ndim * (slice(1, -1),)][m]  # distance to the background
    return dict(zip(names, [size, boundary, float(round_), float(n), float(rp.extent), solidity,
                            float(np.sqrt(eig[-1] / eig[0])) if eig[0] > 0 else 0.0,
                            float(depth.max()), float(depth.mean()), float(depth.max() / depth.mean())]))


# ---------------------------------------------------------------- texture
def quantize(x: np.ndarray, levels: int) -> np.ndarray:
    """uint8 [0, 255] -> integer levels 0 .. levels-1 (equal-width bins, IBSI's fixed bin count)."""
    return (np.asarray(x, np.int64) * levels // 256).astype(np.uint8)


def glcm(q: np.ndarray, offsets, levels: int, symmetric: bool = True, normed: bool = True) -> np.ndarray:
    """The grey-level co-occurrence matrix, by hand, for an image or volume of any dimension.

    q: integer levels (any shape, values < levels); offsets: a list of integer vectors, one
    entry per dimension (e.g. (0, 1) = the right neighbour in 2D). Returns (levels, levels,
    len(offsets)): P[i, j, k] counts the positions where q = i and q shifted by offset k = j
    (pairs leaving the image are not counted). symmetric adds the transpose (counts i-j and
    j-i alike); normed divides each matrix by its sum. Same layout as scikit-image's
    `graycomatrix` with one distance (its last axis holds the angles)."""
    q = np.asarray(q)
    out = np.zeros((levels, levels, len(offsets)), np.float64)
    for k, off in enumerate(offsets):
        if len(off) != q.ndim:
            raise ValueError(f"offset {off} has {len(off)} entries; the image has {q.ndim} dimensions")
        a = q[tuple(slice(max(0, -o), q.shape[d] - max(0, o)) for d, o in enumerate(off))]  # the pixel
        b = q[tuple(slice(max(0, o), q.shape[d] + min(0, o)) for d, o in enumerate(off))]   # its neighbour
        pairs = a.ravel().astype(np.int64) * levels + b.ravel()
        out[:, :, k] = np.bincount(pairs, minlength=levels * levels).reshape(levels, levels)
        if symmetric:
            out[:, :, k] += out[:, :, k].T.copy()
    if normed:
        out /= np.maximum(out.sum(axis=(0, 1), keepdims=True), 1)
    return out


def directions(ndim: int, distance: int = 1) -> list[tuple[int, ...]]:
    """The unique neighbour directions at `distance`: 4 in 2D (0°, 45°, 90°, 135°), 13 in 3D
    (each of the 26 neighbours up to its opposite, which a symmetric GLCM counts anyway).
    Distance is counted in steps along each axis (Chebyshev, as pyradiomics does): at distance
    2 the diagonal neighbour is (2, 2). scikit-image rounds d·(sin θ, cos θ) instead: (1, 1)."""
    out = []
    for v in itertools.product((-1, 0, 1), repeat=ndim):
        if any(v) and next(c for c in v if c) > 0:  # keep one of each ± pair
            out.append(tuple(distance * c for c in v))
    return out


def glcm_features(x: np.ndarray, levels: int = 16, distance: int = 1) -> dict[str, float]:
    """Haralick features (scikit-image's `graycoprops`) of the symmetric, normalised GLCM,
    averaged over all directions (rotation invariant, as radiomics reports them by default)."""
    P = glcm(quantize(x, levels), directions(np.ndim(x), distance), levels)[:, :, None, :]  # (L, L, 1, dirs)
    out = {}
    for prop in GLCM_PROPS:
        v = feature.graycoprops(P, prop)
        out[f"glcm_{prop.lower()}"] = float(np.nan_to_num(v, nan=1.0).mean())  # correlation of a flat image: 1
    return out


def lbp_histogram(x: np.ndarray, points: int = 8, radius: float = 1.0) -> dict[str, float]:
    """The histogram of rotation-invariant uniform LBP codes (P + 2 bins; scikit-image's
    `local_binary_pattern(method="uniform")`), over the pixels whose whole circle lies inside
    the image (scikit-image compares border pixels with zeros outside). A volume: the codes of
    every slice along its first axis, pooled."""
    x = np.asarray(x, np.uint8)
    slices = [x] if x.ndim == 2 else list(x)
    r = int(np.ceil(radius))
    codes = np.concatenate([feature.local_binary_pattern(s, points, radius, "uniform")[r:-r, r:-r].ravel()
                            for s in slices])
    h = np.bincount(codes.astype(np.int64), minlength=points + 2) / codes.size
    return {f"lbp_{k}": float(v) for k, v in enumerate(h)}


# ---------------------------------------------------------------- all together
def handcrafted(x: np.ndarray, families=FAMILIES, levels: int = 16) -> dict[str, float]:
    """Every feature of `families` for one image (H, W) or volume (D, H, W), uint8 [0, 255]."""
    x = np.asarray(x)
    if x.ndim not in (2, 3):
        raise ValueError(f"one image (H, W) or volume (D, H, W) expected, got shape {x.shape}; "
                         "for a batch with channels use feature_matrix(images, spatial_dims)")
    unknown = set(families) - set(FAMILIES)
    if unknown:
        raise ValueError(f"unknown feature families {sorted(unknown)}; valid choices: {', '.join(FAMILIES)}")
    out: dict[str, float] = {}
    if "first_order" in families:
        out.update({f"fo_{k}": float(v) for k, v in first_order(x).items()})
    if "shape" in families:
        out.update({f"shape_{k}": v for k, v in shape(foreground(x)).items()})
    if "glcm" in families:
        out.update(glcm_features(x, levels))
    if "lbp" in families:
        out.update(lbp_histogram(x))
    return out


def feature_matrix(images, spatial_dims: int, families=FAMILIES, levels: int = 16) -> tuple[np.ndarray, list[str]]:
    """(N, F) float32 features of N images (spatial_dims=2) or volumes (3), uint8, shaped
    (N, *spatial) or (N, C, *spatial) (channels are averaged to grey), and the F feature names.
    Families are named by prefix: fo_, shape_, glcm_, lbp_."""
    arr = np.asarray(images)
    extra = arr.ndim - 1 - spatial_dims
    if spatial_dims not in (2, 3) or extra not in (0, 1) or len(arr) == 0:
        raise ValueError(f"images shaped (N, [C,] {'D, ' if spatial_dims == 3 else ''}H, W) expected for "
                         f"spatial_dims={spatial_dims}, got {arr.shape}")
    if extra:
        arr = arr[:, 0] if arr.shape[1] == 1 else arr.mean(axis=1).round().astype(np.uint8)
    rows = [handcrafted(img, families, levels) for img in arr]
    names = list(rows[0])
    return np.array([[r[n] for n in names] for r in rows], np.float32), names


def family_of(name: str) -> str:
    """'first_order', 'shape', 'glcm' or 'lbp' for a feature name of `feature_matrix`."""
    prefix = name.split("_", 1)[0]
    return {"fo": "first_order", "shape": "shape", "glcm": "glcm", "lbp": "lbp"}[prefix]
