"""The field's metrics on synthetic embeddings whose answers are known in closed form."""
import numpy as np
import pytest

from irmogen.errors import IrmogenError
from irmogen.evaluate import metrics as M


def test_perfectly_aligned_embeddings_are_all_hits_at_zero_distance():
    e = np.random.default_rng(0).normal(size=(64, 16))
    out = M.evaluate_embeddings(e, e.copy(), repetitions=5)
    for k in ("top1", "top2", "top3"):
        assert out[k]["mean"] == 1.0 and out[k]["interval"] == 0.0
    assert out["mm_dist"]["mean"] == pytest.approx(0.0, abs=1e-6)
    assert out["fid"]["mean"] == pytest.approx(0.0, abs=1e-6)


def test_r_precision_counts_the_rank_of_the_true_motion_per_text():
    # texts at x = 10 i, motions at 10 i + 6: for i >= 1 motion i-1 (at 10 i - 4) is nearer than
    # motion i, so every text but the first has its motion second
    x = 10.0 * np.arange(32)
    text = np.stack([x, np.zeros(32)], 1)
    motion = np.stack([x + 6.0, np.zeros(32)], 1)
    hits, matched = M.r_precision_rows(text, motion)
    assert hits.sum(0).tolist() == [1, 32, 32]
    assert matched.sum() == pytest.approx(32 * 6.0)


def test_one_motion_for_every_text_scores_chance_not_a_hit():
    # a generator that writes the same motion for every text is tied with itself everywhere: each
    # text's expected place under random order is uniform over the 32, so top-k = k / 32
    text = np.random.default_rng(2).normal(size=(32, 8))
    motion = np.tile(np.random.default_rng(3).normal(size=(1, 8)), (32, 1))
    motion[5] += 1e-9   # the same motion embedded in another batch differs in the last bits
    hits, _ = M.r_precision_rows(text, motion)
    assert hits.sum(0) == pytest.approx([1.0, 2.0, 3.0])


def test_a_motion_shared_by_two_texts_gives_each_half_a_top1_hit():
    x = 10.0 * np.arange(32)
    text = np.stack([x, np.zeros(32)], 1)
    motion = text.copy()
    motion[1] = motion[0]            # text 0 and 1 both get text 0's motion
    text[1] = text[0] + [0.0, 1.0]   # ... and text 1 sits right beside it
    hits, _ = M.r_precision_rows(text, motion)
    assert hits.sum(0).tolist() == [31.0, 32.0, 32.0]   # texts 0 and 1: half a hit each at top-1, a hit at top-2


def test_random_embeddings_score_near_chance():
    rng = np.random.default_rng(1)
    text, motion = rng.normal(size=(3200, 8)), rng.normal(size=(3200, 8))
    out = M.evaluate_embeddings(text, motion, repetitions=3)
    assert out["top1"]["mean"] == pytest.approx(1 / 32, abs=0.01)
    assert out["top3"]["mean"] == pytest.approx(3 / 32, abs=0.015)


def test_fid_is_zero_for_identical_sets_and_the_squared_shift_for_translated_ones():
    real = np.random.default_rng(2).normal(size=(500, 6))
    assert M.fid(real, real) == pytest.approx(0.0, abs=1e-6)
    shift = np.array([1.0, -2.0, 0.5, 0.0, 0.0, 3.0])
    assert M.fid(real, real + shift) == pytest.approx(float(shift @ shift), rel=1e-6)


def test_frechet_distance_matches_the_closed_form_for_diagonal_gaussians():
    s1, s2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    mu1, mu2 = np.zeros(3), np.array([1.0, 1.0, 0.0])
    expected = 2.0 + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    assert M.frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected)


def test_diversity_of_equidistant_points_is_their_distance_except_for_repeated_pairs():
    e = 3.0 * np.eye(400)  # every two distinct rows are 3 * sqrt(2) apart
    d = M.diversity(e, 300, np.random.default_rng(0))
    assert 0.97 * 3 * np.sqrt(2) < d <= 3 * np.sqrt(2)
    assert M.diversity(np.ones((10, 4)), 10, np.random.default_rng(0)) == 0.0
    with pytest.raises(IrmogenError):
        M.diversity(e[:5], 300, np.random.default_rng(0))


def test_multimodality_is_zero_for_repeated_identical_generations_and_positive_otherwise():
    same = np.repeat(np.random.default_rng(3).normal(size=(5, 1, 8)), 30, axis=1)
    assert M.multimodality(same, 10, np.random.default_rng(0)) == 0.0
    varied = same + np.random.default_rng(4).normal(size=same.shape)
    assert M.multimodality(varied, 10, np.random.default_rng(0)) > 0.5


def test_mean_interval_is_1_96_std_over_sqrt_n():
    v = np.arange(20.0)
    out = M.mean_interval(v)
    assert out["mean"] == pytest.approx(9.5)
    assert out["interval"] == pytest.approx(1.96 * v.std() / np.sqrt(20))


def test_counts_follow_the_protocol_and_shrink_for_small_sets():
    rng = np.random.default_rng(5)
    e = rng.normal(size=(70, 4))
    out = M.evaluate_embeddings(e, e + 0.1 * rng.normal(size=e.shape), repetitions=4,
                                mm_embeddings=rng.normal(size=(3, 30, 4)))
    assert out["counts"] == {"samples": 70, "batch_size": 32, "batches": 2, "repetitions": 4,
                             "diversity_times": 70, "mm_texts": 3, "mm_repeats": 30, "mm_times": 10}
    assert set(out) == {*M.METRICS, "mmodality", "counts", "per_text"}
    small = M.evaluate_embeddings(e[:10], e[:10], repetitions=2)
    assert small["counts"]["batch_size"] == 10 and small["top1"]["mean"] == 1.0


def test_mismatched_embeddings_are_refused():
    with pytest.raises(IrmogenError, match="must be equal"):
        M.evaluate_embeddings(np.zeros((40, 4)), np.zeros((40, 5)))


def test_per_text_hits_average_to_top1_and_the_paired_gain_is_the_exact_difference():
    rng = np.random.default_rng(4)
    text = rng.normal(size=(100, 8))
    before = text + rng.normal(scale=1.5, size=text.shape)   # weakly aligned
    after = before.copy()
    after[:30] = text[:30]                                   # 30 texts get their own embedding: sure hits
    a = M.evaluate_embeddings(text, before, repetitions=6, seed=3)
    b = M.evaluate_embeddings(text, after, repetitions=6, seed=3)
    top1, batched = np.array(a["per_text"]["top1"]), np.array(a["per_text"]["batched"])
    assert batched.sum() == 6 * 96   # 3 batches of 32 per repetition
    assert (top1[batched > 0] * batched[batched > 0]).sum() / batched.sum() == pytest.approx(a["top1"]["mean"])
    assert np.all(np.array(b["per_text"]["top1"])[:30][batched[:30] > 0] == 1.0)
    gain = M.paired_top1_gain(a["per_text"], b["per_text"])
    assert gain["mean"] == pytest.approx(b["top1"]["mean"] - a["top1"]["mean"])
    assert gain["mean"] - gain["interval"] > 0          # a clear gain is told from noise
    same = M.paired_top1_gain(a["per_text"], a["per_text"])
    assert same == {"mean": 0.0, "interval": 0.0}
    other_seed = M.evaluate_embeddings(text, after, repetitions=6, seed=4)
    with pytest.raises(IrmogenError, match="not batched alike"):
        M.paired_top1_gain(a["per_text"], other_seed["per_text"])


def test_draws_combine_to_the_mean_of_their_means_with_the_interval_of_that_mean():
    rng = np.random.default_rng(5)
    text = rng.normal(size=(64, 8))
    draws = [M.evaluate_embeddings(text, text + rng.normal(scale=s, size=text.shape), repetitions=4, seed=1,
                                   mm_embeddings=rng.normal(size=(4, 5, 8)) if s == 1.0 else None)
             for s in (1.0, 2.0)]
    both = M.combine_draws(draws)
    assert both["top1"]["mean"] == pytest.approx((draws[0]["top1"]["mean"] + draws[1]["top1"]["mean"]) / 2)
    assert both["top1"]["interval"] == pytest.approx(np.hypot(draws[0]["top1"]["interval"], draws[1]["top1"]["interval"]) / 2)
    assert both["mmodality"] == draws[0]["mmodality"]   # measured on one draw only
    assert both["counts"]["samples"] == 128 and both["counts"]["draws"] == 2
    assert len(both["per_text"]["top1"]) == 128
    assert M.combine_draws(draws[:1]) is draws[0]
