import numpy as np
import pytest
import scipy.linalg
import torch

from flowlib.data import digits_labels, load_dataset
from flowlib.metrics import (
    FID,
    ClassifierFeatures,
    InceptionFeatures,
    MetricError,
    RandomFourierFeatures,
    SlicedW2,
    check_same_metric,
    frechet_distance,
    gaussian_stats,
    rmse,
    sliced_wasserstein,
    train_feature_classifier,
)


def test_fid_of_a_set_with_itself_is_zero():
    feats = np.random.default_rng(0).normal(size=(500, 8))
    stats = gaussian_stats(feats)
    assert abs(frechet_distance(stats, stats)) < 1e-6


def test_frechet_distance_equals_clean_fid():
    from cleanfid.fid import frechet_distance as clean_fid_distance

    rng = np.random.default_rng(3)
    a, b = gaussian_stats(rng.normal(size=(800, 16))), gaussian_stats(1.3 * rng.normal(size=(800, 16)) + 0.2)
    assert frechet_distance(a, b) == pytest.approx(float(clean_fid_distance(a[0], a[1], b[0], b[1])), rel=1e-9)


def test_random_fourier_features_see_shape_beyond_two_moments():
    """Two point sets with equal mean and covariance but different shape: plain FD cannot tell them apart."""
    gen = torch.Generator().manual_seed(0)
    gauss = torch.randn(4000, 2, generator=gen)
    other_gauss = torch.randn(4000, 2, generator=gen)
    square = (torch.rand(4000, 2, generator=gen) - 0.5) * 12**0.5  # uniform with unit variance per axis
    rff = RandomFourierFeatures(2, bandwidth=0.5)
    plain = FID(lambda x: x.double().numpy(), gauss, name="fd-points")
    assert plain(square) < 0.02  # the first two moments agree
    fd = FID(rff, gauss)
    assert fd(other_gauss) * 5 < fd(square)
    assert fd.name == "fd-rff" and np.array_equal(rff(square), RandomFourierFeatures(2, bandwidth=0.5)(square))


def test_fid_of_two_gaussians_matches_closed_form():
    rng = np.random.default_rng(1)
    d = 4
    mu1, mu2 = np.zeros(d), np.array([1.0, -0.5, 0.0, 2.0])
    a = rng.normal(size=(d, d)) * 0.5
    s1, s2 = np.eye(d), a @ a.T + 0.5 * np.eye(d)
    closed = float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real))
    assert frechet_distance((mu1, s1), (mu2, s2)) == pytest.approx(closed, rel=1e-6)
    f1 = rng.multivariate_normal(mu1, s1, size=200_000)
    f2 = rng.multivariate_normal(mu2, s2, size=200_000)
    assert frechet_distance(gaussian_stats(f1), gaussian_stats(f2)) == pytest.approx(closed, rel=0.02)


def test_sliced_w2_of_shifted_gaussians():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(20_000, 2, generator=gen)
    shift = torch.tensor([3.0, 4.0])
    b = torch.randn(20_000, 2, generator=gen) + shift
    # W2^2 along direction u is (u . m)^2; its mean over the circle is |m|^2 / 2
    assert sliced_wasserstein(a, b, n_projections=2000) == pytest.approx(5.0 / 2**0.5, rel=0.03)
    assert sliced_wasserstein(a, a) == 0.0
    assert sliced_wasserstein(a[:1000], a[:3000]) < 0.1  # unequal sizes use quantiles
    metric = SlicedW2(a)
    assert metric.name == "sliced-w2" and metric(b) > 3


def test_digits_classifier_fid_ranks_quality():
    ds = load_dataset("digits")
    y_train, y_held = digits_labels()
    clf = train_feature_classifier(ds.train, y_train, steps=300)
    assert (clf(ds.heldout).argmax(1) == y_held).float().mean() > 0.9
    fid = FID(ClassifierFeatures(clf), ds.train)
    real = fid(ds.heldout)
    noisy = fid((ds.heldout + 0.5 * torch.randn_like(ds.heldout)).clamp(-1, 1))
    noise = fid(torch.rand(599, 1, 8, 8) * 2 - 1)
    assert fid.name == "fid-digits-classifier"
    assert abs(fid(ds.train)) < 1e-6 and 0 < real < noisy < noise


def test_rmse_and_metric_mixing():
    x = torch.zeros(4, 3)
    y = torch.tensor([[1.0, 1.0, 1.0]] * 2 + [[0.0, 0.0, 3.0]] * 2)
    assert rmse(x, y) == pytest.approx((1.0 + 3**0.5) / 2)
    with pytest.raises(MetricError, match="matching shapes"):
        rmse(x, y[:2])
    assert check_same_metric(["sliced-w2", "sliced-w2"]) == "sliced-w2"
    with pytest.raises(MetricError, match="different metrics"):
        check_same_metric(["fid-inception", "fid-digits-classifier"])


def test_inception_weights_missing_or_wrong(tmp_path):
    with pytest.raises(MetricError, match="not found.*never downloaded.*inception-2015-12-05.pt"):
        InceptionFeatures(tmp_path / "inception-2015-12-05.pt")
    fake = tmp_path / "inception-2015-12-05.pt"
    fake.write_bytes(b"not weights")
    with pytest.raises(MetricError, match="does not match the expected SHA-256"):
        InceptionFeatures(fake, sha256="0" * 64)


def test_the_feature_classifier_fits_28px_images_and_refuses_other_sizes():
    from flowlib.metrics import FeatureClassifier, MetricError

    x = torch.randn(40, 1, 28, 28)
    clf = train_feature_classifier(x, torch.arange(40) % 10, steps=3)
    assert clf.image_size == 28 and clf.features(x).shape == (40, 64)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in clf.body) == 3  # one more stride-2 convolution than for 8x8
    assert [k for k in FeatureClassifier(8).state_dict()] == ["body.0.weight", "body.0.bias", "body.2.weight",
                                                              "body.2.bias", "body.5.weight", "body.5.bias",
                                                              "head.weight", "head.bias"]  # the digits net's keys
    with pytest.raises(MetricError, match="8x8 or 28x28"):
        FeatureClassifier(32)
    with pytest.raises(MetricError, match=r"\[N, 1, S, S\]"):
        train_feature_classifier(torch.randn(4, 3, 8, 8), torch.zeros(4, dtype=torch.long), steps=1)


@pytest.mark.parametrize("n", [8, 40, 64, 200])
def test_frechet_distance_from_few_samples_equals_the_plain_formula(n):
    """With N ≤ D the N x N form is used; it must give the plain D x D formula's value (and beyond D, the same path)."""
    from flowlib.metrics import frechet_distance, frechet_distance_to, gaussian_stats

    rng = np.random.default_rng(n)
    stats = gaussian_stats(rng.normal(size=(500, 64)) @ rng.normal(size=(64, 64)) * 0.2)
    features = rng.normal(size=(n, 64)) + 0.5
    want = frechet_distance(gaussian_stats(features), stats)
    assert frechet_distance_to(features, stats) == pytest.approx(want, rel=1e-7)
    assert frechet_distance_to(stats[0][None].repeat(3, 0) + rng.normal(size=(3, 64)) * 1e-3, stats) > 0
