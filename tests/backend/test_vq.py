"""Motion tokenizer: published-checkpoint compatibility, shapes, EMA training, our safetensors format."""
import math

import pytest
import torch

from irmogen.errors import IrmogenError
from irmogen.vq import EMAQuantizer, MotionVQ, VQConfig, position_slice, training_loss

TINY = VQConfig(width=32, code_dim=16, codebook_size=32, depth=2)


def published_state_dict(seed=0, input_dim=263):
    """The 67 tensors of a T2M-GPT VQ-VAE checkpoint, named and shaped as in reference/model.md
    (written out independently of irmogen.vq), with random values."""
    g = torch.Generator().manual_seed(seed)
    shapes = {"encoder.model.0": [512, input_dim, 3]}
    for stage in (2, 3):
        shapes[f"encoder.model.{stage}.0"] = [512, 512, 4]
        for block in range(3):
            shapes[f"encoder.model.{stage}.1.model.{block}.conv1"] = [512, 512, 3]
            shapes[f"encoder.model.{stage}.1.model.{block}.conv2"] = [512, 512, 1]
    shapes["encoder.model.4"] = [512, 512, 3]
    shapes["decoder.model.0"] = [512, 512, 3]
    for stage in (2, 3):
        for block in range(3):
            shapes[f"decoder.model.{stage}.0.model.{block}.conv1"] = [512, 512, 3]
            shapes[f"decoder.model.{stage}.0.model.{block}.conv2"] = [512, 512, 1]
        shapes[f"decoder.model.{stage}.2"] = [512, 512, 3]
    shapes["decoder.model.4"] = [512, 512, 3]
    shapes["decoder.model.6"] = [input_dim, 512, 3]
    sd = {}
    for name, shape in shapes.items():
        sd[f"vqvae.{name}.weight"] = torch.randn(shape, generator=g) * 0.02
        sd[f"vqvae.{name}.bias"] = torch.randn(shape[0], generator=g) * 0.02
    sd["vqvae.quantizer.codebook"] = torch.randn(512, 512, generator=g)
    assert len(sd) == 67
    return sd


@pytest.fixture(scope="module")
def published():
    return published_state_dict()


@pytest.fixture(scope="module")
def loaded(published):
    return MotionVQ.from_published_state_dict({"net": published})


def test_published_checkpoint_loads_strictly_into_the_default_model(published, loaded):
    assert MotionVQ().config == VQConfig() == loaded.config
    ours = loaded.state_dict()
    assert len(ours) == 67
    for key, value in published.items():
        assert torch.equal(ours[key.removeprefix("vqvae.")], value), key
    assert not loaded.training


@pytest.mark.parametrize("form", ["vqvae_prefix", "no_prefix", "net_prefix", "net_wrapper",
                                  "whole_module"])
def test_published_key_forms(published, loaded, form):
    plain = {k.removeprefix("vqvae."): v for k, v in published.items()}
    sd = {"vqvae_prefix": published, "no_prefix": plain,
          "net_prefix": {"net." + k: v for k, v in published.items()},
          "net_wrapper": {"net": plain},
          "whole_module": {**{"net." + k: v for k, v in published.items()},
                           "llm.model.embed_tokens.weight": torch.zeros(4, 4)}}[form]
    vq = MotionVQ.from_published_state_dict(sd)
    x = torch.randn(1, 16, 263)
    assert torch.equal(vq.encode(x), loaded.encode(x))


def test_shape_mismatch_names_the_tensor(published):
    sd = dict(published)
    sd["vqvae.decoder.model.6.weight"] = torch.zeros(251, 512, 3)
    with pytest.raises(IrmogenError, match=r"vqvae\.decoder\.model\.6\.weight.*\[251, 512, 3\]"):
        MotionVQ.from_published_state_dict(sd, VQConfig())


def test_missing_and_unexpected_tensors_are_named(published):
    sd = dict(published)
    del sd["vqvae.encoder.model.3.1.model.2.conv2.bias"]
    with pytest.raises(IrmogenError, match=r"missing tensor 'encoder\.model\.3\.1\.model\.2\.conv2\.bias'"):
        MotionVQ.from_published_state_dict(sd)
    sd = dict(published, **{"vqvae.quantizer.code_sum": torch.zeros(512, 512)})
    with pytest.raises(IrmogenError, match=r"unexpected tensor 'vqvae\.quantizer\.code_sum'"):
        MotionVQ.from_published_state_dict(sd)


def test_architecture_is_read_from_the_checkpoint_shapes():
    kit = VQConfig(input_dim=251, width=24, code_dim=8, codebook_size=40, depth=2)
    sd = {"vqvae." + k: v for k, v in MotionVQ(kit).state_dict().items()}
    assert MotionVQ.from_published_state_dict(sd).config == kit


def test_full_model_tokenises_196_frames_into_49_codes(loaded):
    x = torch.randn(2, 196, 263)
    codes = loaded.encode(x)
    assert codes.shape == (2, 49) and codes.dtype == torch.long
    assert 0 <= codes.min() and codes.max() < 512
    out = loaded.decode(codes)
    assert out.shape == (2, 196, 263)
    recon, commit, perplexity = loaded(x)
    assert recon.shape == (2, 196, 263)
    # forward is encode -> nearest code -> decode
    assert torch.allclose(recon, out, atol=1e-5)


def test_frames_are_cropped_to_a_multiple_of_four():
    vq = MotionVQ(TINY).eval()
    x = torch.randn(1, 23, 263)
    codes = vq.encode(x)
    assert codes.shape == (1, 5)
    assert vq.decode(codes).shape == (1, 20, 263)
    assert torch.equal(codes, vq.encode(x[:, :20]))
    assert vq(x)[0].shape == (1, 20, 263)
    with pytest.raises(IrmogenError, match="3 frames"):
        vq.encode(torch.randn(1, 3, 263))
    with pytest.raises(IrmogenError, match=r"\(1, 8, 100\)"):
        vq.encode(torch.randn(1, 8, 100))


def test_decode_rejects_codes_outside_the_codebook():
    vq = MotionVQ(TINY)
    with pytest.raises(IrmogenError, match="code 32 is out of range"):
        vq.decode(torch.tensor([[0, 32]]))
    with pytest.raises(IrmogenError, match="at least one code"):
        vq.decode(torch.zeros(1, 0, dtype=torch.long))


def test_eval_mode_is_deterministic_and_leaves_the_codebook_alone():
    torch.manual_seed(0)
    vq = MotionVQ(TINY).eval()
    x = torch.randn(3, 32, 263)
    before = vq.quantizer.codebook.clone()
    a, b = vq(x), vq(x)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert torch.equal(vq.quantizer.codebook, before)
    vq.train()
    vq(x)
    assert not torch.equal(vq.quantizer.codebook, before)


def test_straight_through_gives_the_encoder_gradients():
    vq = MotionVQ(TINY).train()
    x = torch.randn(2, 16, 263)
    recon, commit, _ = vq(x)
    training_loss(recon, x, commit, vq.config)["total"].backward()
    assert vq.encoder.model[0].weight.grad.abs().sum() > 0
    assert vq.quantizer.codebook.grad is None


def test_ema_moves_codes_to_cluster_means():
    q = EMAQuantizer(VQConfig(codebook_size=2, code_dim=2, mu=0.9, reset_threshold=0.5)).train()
    centres = torch.tensor([[5.0, 0.0], [-5.0, 3.0]])
    g = torch.Generator().manual_seed(1)
    for _ in range(80):
        pts = centres.repeat(50, 1) + 0.1 * torch.randn(100, 2, generator=g)
        q(pts.t()[None])
    found = q.codebook[q.nearest(centres)]
    assert torch.allclose(found, centres, atol=0.1)
    assert set(q.nearest(centres).tolist()) == {0, 1}


def test_dead_codes_are_reseeded_from_the_batch():
    q = EMAQuantizer(VQConfig(codebook_size=16, code_dim=4))
    with torch.no_grad():
        q.codebook.copy_(100 + torch.randn(16, 4))
        q.codebook[0] = 0
    q._sync_statistics()                      # as after loading a trained codebook
    torch.manual_seed(0)
    z = torch.randn(1, 4, 200)
    flat = z[0].t()
    assert q.nearest(flat).unique().numel() == 1  # everything snaps to code 0
    q.train()(z)
    assert q.nearest(flat).unique().numel() > 8
    assert (q.codebook[1:].abs() < 10).all()   # the far-away codes now live among the data


def smooth_motions(n, frames, seed):
    """Synthetic normalised 'features': 3 slow sine waves (0.3-1 Hz at 20 fps, random phases)
    mixed into 263 channels by one fixed matrix."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(frames, dtype=torch.float32)[None, :, None] / 20
    freq = 0.3 + 0.7 * torch.rand(n, 1, 3, generator=g)
    phase = 6.28 * torch.rand(n, 1, 3, generator=g)
    latent = torch.sin(6.28 * freq * t + phase)
    mix = torch.randn(3, 263, generator=torch.Generator().manual_seed(99)) / 3 ** 0.5
    return latent @ mix


def test_ema_training_reduces_reconstruction_loss_and_uses_many_codes():
    torch.manual_seed(0)
    config = VQConfig(width=48, code_dim=16, codebook_size=32, depth=2)
    vq = MotionVQ(config).train()
    data = smooth_motions(64, 32, seed=0)
    opt = torch.optim.AdamW(vq.parameters(), lr=1e-3)
    history, perplexities = [], []
    for step in range(80):
        batch = data[torch.randint(0, 64, (16,))]
        recon, commit, perplexity = vq(batch)
        loss = training_loss(recon, batch, commit, config)
        opt.zero_grad()
        loss["total"].backward()
        opt.step()
        history.append(loss["recon"].item())
        perplexities.append(perplexity.item())
    first, last = sum(history[:5]) / 5, sum(history[-5:]) / 5
    print(f"recon loss {first:.4f} -> {last:.4f}, perplexity {perplexities[-1]:.1f}")
    assert last < 0.6 * first
    assert min(perplexities[-10:]) > 4
    vq.eval()
    held_out = smooth_motions(8, 32, seed=1)
    assert vq.encode(held_out).unique().numel() > 4


def test_training_loss_weights_the_position_slice():
    assert position_slice(263) == slice(4, 67) and position_slice(251) == slice(4, 64)
    config = VQConfig()
    target = torch.zeros(1, 8, 263)
    zero = torch.tensor(0.0)
    assert training_loss(target, target, zero, config)["total"].item() == 0
    far_off = target.clone()
    far_off[..., 100] = 3.0                                 # a rotation channel: no position term
    a = training_loss(far_off, target, zero, config)
    assert a["vel"].item() == 0 and math.isclose(a["total"].item(), 2.5 / 263, rel_tol=1e-5)
    far_off = target.clone()
    far_off[..., 10] = 3.0                                  # a joint position channel
    b = training_loss(far_off, target, torch.tensor(1.0), config)
    assert math.isclose(b["total"].item(), 2.5 / 263 + 0.5 * 2.5 / 63 + 0.02, rel_tol=1e-5)


def test_safetensors_roundtrip_reproduces_outputs(tmp_path):
    torch.manual_seed(0)
    vq = MotionVQ(TINY).train()
    vq(smooth_motions(8, 32, seed=2))                       # a trained, data-seeded codebook
    vq.eval()
    sd = vq.state_dict_for_safetensors()
    assert set(sd) == set(vq.state_dict()) and all(t.is_contiguous() for t in sd.values())
    assert not any("code_sum" in k or "code_count" in k for k in sd)
    vq.save(tmp_path)
    x = smooth_motions(2, 24, seed=3)
    for other in (MotionVQ.load(tmp_path), MotionVQ.load_safetensors(tmp_path / "vq.safetensors", TINY)):
        assert other.config == TINY and not other.training
        assert torch.equal(other.encode(x), vq.encode(x))
        assert torch.equal(other(x)[0], vq(x)[0])


def test_loading_marks_the_codebook_as_trained(tmp_path):
    vq = MotionVQ(TINY)
    path = vq.save_safetensors(tmp_path / "weights.safetensors")
    other = MotionVQ.load_safetensors(path)
    assert bool(other.quantizer.initialised)
    assert torch.equal(other.quantizer.code_sum, other.quantizer.codebook)
    other.train()(torch.randn(2, 16, 263))                 # fine-tuning keeps, not re-seeds, it
    assert bool(other.quantizer.initialised)


def test_load_errors_name_the_file_and_tensor(tmp_path):
    with pytest.raises(IrmogenError, match="vq.safetensors: VQ weights not found"):
        MotionVQ.load(tmp_path)
    path = MotionVQ(TINY).save_safetensors(tmp_path / "vq.safetensors")
    with pytest.raises(IrmogenError, match=r"encoder\.model\.0\.weight.*\[32, 263, 3\], expected \[64, 263, 3\]"):
        MotionVQ.load(tmp_path, VQConfig(width=64, code_dim=16, codebook_size=32, depth=2))
    assert path.exists()


def test_config_validation_and_serialisation():
    assert VQConfig.from_dict(TINY.to_dict()) == TINY
    assert VQConfig().downsample == 4
    with pytest.raises(IrmogenError, match="activation = 'tanh'"):
        VQConfig(activation="tanh")
    with pytest.raises(IrmogenError, match="width = 0"):
        VQConfig(width=0)
    with pytest.raises(IrmogenError, match="unknown field 'nb_code'"):
        VQConfig.from_dict({"nb_code": 512})


def _ema_step(rank, world, store, config, codebook, batches, out):
    """One training step of a quantiser in process `rank` of a gloo group."""
    torch.distributed.init_process_group("gloo", init_method=f"file://{store}", rank=rank,
                                         world_size=world)
    try:
        q = EMAQuantizer(config)
        q.codebook.copy_(codebook)
        q._sync_statistics()
        q.train()(batches[rank])
        torch.save(q.codebook, f"{out}.{rank}")
    finally:
        torch.distributed.destroy_process_group()


def test_ema_statistics_are_global_across_processes(tmp_path):
    """Two gloo processes, each with half the batch, update the codebook like one process with
    the whole batch (no dead codes in one step: threshold far below the decayed counts)."""
    config = VQConfig(codebook_size=8, code_dim=4, mu=0.5, reset_threshold=1e-6)
    g = torch.Generator().manual_seed(0)
    codebook = torch.randn(8, 4, generator=g)
    batches = [torch.randn(1, 4, 30, generator=g) for _ in range(2)]
    torch.multiprocessing.spawn(_ema_step, nprocs=2, args=(2, tmp_path / "store", config, codebook,
                                                           batches, tmp_path / "codebook"))
    single = EMAQuantizer(config)
    single.codebook.copy_(codebook)
    single._sync_statistics()
    single.train()(torch.cat(batches, dim=2))
    assert not torch.allclose(single.codebook, codebook)
    for rank in range(2):
        assert torch.allclose(torch.load(tmp_path / f"codebook.{rank}"), single.codebook, atol=1e-6)
