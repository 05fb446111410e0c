"""Handcrafted features (chapter 08) against scikit-image and SciPy on known images: the GLCM by
hand = `graycomatrix` (2D, all four angles, several distances; 3D in-plane offsets = the sum of
the slices' 2D matrices), Haralick properties on a checkerboard, first-order statistics, shape
of a disc and a ball against geometry, LBP histograms, and the batch API's errors."""

import math

import numpy as np
import pytest
from scipy import stats
from skimage import data as skdata
from skimage import feature

from medlib import features as F


@pytest.fixture(scope="module")
def camera():
    return skdata.camera()[::8, ::8]  # 64 x 64 uint8, a known image


@pytest.mark.parametrize("distance", [1, 2, 3])
def test_glcm_by_hand_equals_scikit_image(camera, distance):
    q = F.quantize(camera, 8)
    angles = [0, np.pi / 4, np.pi / 2, 3 * np.pi / 4]
    ref = feature.graycomatrix(q, [distance], angles, levels=8, symmetric=True, normed=True)[:, :, 0, :]
    # the angle θ pairs (r, c) with (r + d sinθ, c + d cosθ), rounded; symmetric counts ignore the sign
    offsets = [(round(distance * math.sin(a)), round(distance * math.cos(a))) for a in angles]
    mine = F.glcm(q, offsets, 8)
    np.testing.assert_allclose(mine, ref, atol=1e-12)
    raw = feature.graycomatrix(q, [distance], [0], levels=8)[:, :, 0, 0]
    np.testing.assert_array_equal(F.glcm(q, [(0, distance)], 8, symmetric=False, normed=False)[:, :, 0], raw)


def test_glcm_in_3d_with_in_plane_offsets_sums_the_slices(camera):
    vol = np.stack([camera, camera[::-1], camera.T])
    q = F.quantize(vol, 4)
    mine = F.glcm(q, [(0, 0, 1)], 4, normed=False)[:, :, 0]
    ref = sum(feature.graycomatrix(s, [1], [0], levels=4, symmetric=True)[:, :, 0, 0] for s in q)
    np.testing.assert_array_equal(mine, ref)
    assert len(F.directions(3)) == 13 and len(F.directions(2)) == 4
    with pytest.raises(ValueError, match="3 dimensions"):
        F.glcm(q, [(0, 1)], 4)


def test_glcm_properties_of_a_checkerboard():
    board = (np.indices((16, 16)).sum(0) % 2 * 255).astype(np.uint8)
    f = F.glcm_features(board, levels=2)
    # horizontal and vertical neighbours always differ (contrast 1), diagonal ones never (0)
    assert f["glcm_contrast"] == pytest.approx(0.5) and f["glcm_homogeneity"] == pytest.approx(0.75)
    assert F.glcm_features(np.full((8, 8), 100, np.uint8))["glcm_asm"] == pytest.approx(1.0)


def test_first_order_against_numpy_and_scipy(camera):
    f = F.first_order(camera)
    v = camera.astype(float).ravel()
    assert f["mean"] == pytest.approx(v.mean()) and f["std"] == pytest.approx(v.std())
    assert f["skewness"] == pytest.approx(stats.skew(v)) and f["kurtosis"] == pytest.approx(stats.kurtosis(v))
    assert f["median"] == pytest.approx(np.median(v))
    flat = F.first_order(np.full((8, 8), 7, np.uint8))
    assert flat["entropy"] == 0 and flat["uniformity"] == 1 and flat["skewness"] == 0


def test_shape_of_a_disc_and_a_ball():
    yy, xx = np.mgrid[-32:32, -32:32]
    disc = xx**2 + yy**2 <= 20**2
    s = F.shape(disc)
    assert s["area"] == disc.sum() and abs(s["perimeter"] - 2 * math.pi * 20) / (2 * math.pi * 20) < 0.03
    assert 0.95 < s["compactness"] < 1.1 and s["elongation"] == pytest.approx(1, abs=0.01)
    assert s["components"] == 1 and s["solidity"] > 0.95
    z, y, x = np.mgrid[-16:16, -16:16, -16:16]
    ball = x**2 + y**2 + z**2 <= 12**2
    b = F.shape(ball)
    # marching cubes on a binary ball is ~7 % long (the voxel staircase), as in pyradiomics
    assert 0 < (b["surface"] - 4 * math.pi * 144) / (4 * math.pi * 144) < 0.08
    assert 0.9 < b["sphericity"] <= 1.0
    rod = np.zeros((32, 32, 32), bool)
    rod[14:18, 14:18, 2:30] = True
    assert F.shape(rod)["elongation"] < 0.2  # a rod is elongated, a ball is not
    bulge = rod | (x**2 + y**2 + (z - 0) ** 2 <= 5**2)  # an aneurysm-like ball on the rod
    assert F.shape(rod)["thickness_max"] == 2 and F.shape(bulge)["thickness_max"] >= 5
    assert F.shape(bulge)["thickness_ratio"] > F.shape(rod)["thickness_ratio"]
    assert F.shape(np.zeros((8, 8), bool))["area"] == 0


def test_foreground_of_a_mask_and_of_a_grey_image(camera):
    mask = np.array([[0, 255], [255, 0]], np.uint8)
    assert F.foreground(mask).tolist() == [[False, True], [True, False]]
    fg = F.foreground(camera)
    assert 0.2 < fg.mean() < 0.8


def test_lbp_histogram(camera):
    h = F.lbp_histogram(camera)
    assert len(h) == 10 and sum(h.values()) == pytest.approx(1)
    codes = feature.local_binary_pattern(camera, 8, 1, "uniform")[1:-1, 1:-1]  # whole circles only
    assert h["lbp_9"] == pytest.approx((codes == 9).mean())  # the non-uniform patterns' bin
    flat = F.lbp_histogram(np.full((8, 8), 3, np.uint8))
    assert flat["lbp_8"] == 1  # every neighbour >= the centre: the all-ones pattern


def test_feature_matrix_for_images_and_volumes(camera):
    X, names = F.feature_matrix(np.stack([camera, camera.T])[:, None], spatial_dims=2)
    assert X.shape == (2, len(names)) and X.dtype == np.float32
    assert {F.family_of(n) for n in names} == set(F.FAMILIES)
    V, vnames = F.feature_matrix(np.stack([np.stack([camera] * 4)] * 2), spatial_dims=3,
                                 families=("shape", "glcm"))
    assert V.shape == (2, len(vnames)) and "shape_sphericity" in vnames and "glcm_contrast" in vnames
    with pytest.raises(ValueError, match="spatial_dims=3"):
        F.feature_matrix(np.zeros((2, 8, 8), np.uint8), spatial_dims=3)
    with pytest.raises(ValueError, match="unknown feature families"):
        F.handcrafted(camera, families=("colour",))
