"""COOT: parity with the official code, shapes, padding invariance and the losses."""

import json
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from models.coot import (
    Coot,
    CootConfig,
    build_coot,
    clustering_loss,
    coot_loss,
    cycle_consistency_loss,
    margin_contrastive_loss,
)

torch.set_num_threads(1)
PARITY = Path(__file__).parent / "data" / "coot_parity_small.safetensors"


def _pad(seqs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    t = max(len(s) for s in seqs)
    feats = torch.zeros(len(seqs), t, seqs[0].shape[1])
    mask = torch.zeros(len(seqs), t, dtype=torch.bool)
    for i, s in enumerate(seqs):
        feats[i, : len(s)] = s
        mask[i, : len(s)] = True
    return feats, mask


def _tiny(**kw) -> CootConfig:
    base = dict(
        video_feature_dim=12,
        text_feature_dim=10,
        hidden_dim=16,
        num_heads=2,
        ff_dim=16,
        pooler_hidden_dim=16,
        pooler_num_heads=2,
    )
    base.update(kw)
    return CootConfig(**base)


def test_parity_with_official_code():
    """The official state dict loads strictly and reproduces all six outputs of the official model manager."""
    f = safe_open(str(PARITY), "pt")
    meta = f.metadata()
    tensors = {k: f.get_tensor(k) for k in f.keys()}
    model = Coot(CootConfig.small()).eval()
    model.load_state_dict({k: v for k, v in tensors.items() if k.startswith("net_")}, strict=True)
    vf, vm = _pad([tensors["input.video0.frame_features"], tensors["input.video1.frame_features"]])
    tf, tm = _pad([tensors["input.paragraph0.token_features"], tensors["input.paragraph1.token_features"]])
    with torch.no_grad():
        vo = model.encode_video(vf, vm, json.loads(meta["clips"]))
        to = model.encode_text(tf, tm, json.loads(meta["sentences"]))
    got = dict(
        vid_context=vo.vid_context,
        clip_emb=vo.clip_emb,
        vid_emb=vo.vid_emb,
        par_context=to.par_context,
        sent_emb=to.sent_emb,
        par_emb=to.par_emb,
    )
    for name, value in got.items():
        ref = tensors[f"output.{name}"]
        assert value.shape == ref.shape, name
        err = (value - ref).abs().max().item()
        assert err < 1e-4, f"{name}: max abs error {err}"


def test_tiny_shapes_and_config_is_json():
    cfg = _tiny()
    json.dumps(asdict(cfg))
    assert CootConfig(**json.loads(json.dumps(asdict(cfg)))) == cfg
    model = Coot(cfg).eval()
    vf, vm = _pad([torch.randn(7, 12), torch.randn(4, 12)])
    vo = model.encode_video(vf, vm, [[(0, 2), (2, 7)], [(0, 1), (1, 3), (3, 4)]])
    assert vo.vid_emb.shape == (2, 32) and vo.vid_context.shape == (2, 16)
    assert vo.clip_emb.shape == (5, 16) and vo.clip_emb_padded.shape == (2, 3, 16)
    assert vo.clip_mask.tolist() == [[True, True, False], [True, True, True]]
    tf, tm = _pad([torch.randn(5, 10)])
    to = model.encode_text(tf, tm, [[(0, 3), (3, 5)]])
    assert to.par_emb.shape == (1, 32) and to.sent_emb.shape == (2, 16) and to.par_context.shape == (1, 16)


def test_batched_equals_single_with_padding_excluded():
    """With the app default (padding not averaged) an item's embeddings do not depend on its batch."""
    torch.manual_seed(0)
    model = Coot(_tiny()).eval()
    a, b = torch.randn(9, 12), torch.randn(5, 12)
    ra, rb = [(0, 3), (3, 9)], [(0, 1), (1, 2), (2, 4), (4, 5)]
    vf, vm = _pad([a, b])
    with torch.no_grad():
        both = model.encode_video(vf, vm, [ra, rb])
        single = model.encode_video(a[None], None, [ra])
    torch.testing.assert_close(both.vid_emb[0], single.vid_emb[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(both.clip_emb[:2], single.clip_emb, atol=1e-5, rtol=1e-5)


def test_bad_ranges_raise():
    model = Coot(_tiny()).eval()
    with pytest.raises(ValueError):
        model.encode_video(torch.randn(1, 4, 12), None, [[(0, 5)]])
    with pytest.raises(ValueError):
        model.encode_video(torch.randn(1, 4, 12), None, [[(2, 2)]])


def test_contrastive_and_clustering_losses():
    e = torch.eye(4)
    assert margin_contrastive_loss(e, e).item() == 0.0  # orthogonal negatives beat the margin
    assert margin_contrastive_loss(e, e.roll(1, dims=0)).item() > 0.1  # mismatched pairs violate it
    assert clustering_loss(e, e).item() == 0.0
    same = torch.ones(3, 4)
    # identical items: every negative ties the positive, cost = margin per pair
    assert abs(margin_contrastive_loss(same, same, 0.2).item() - 2 * 0.2 * 6 / 9) < 1e-6


def test_cycle_consistency_aligned_is_zero_and_mismatched_is_positive():
    """Clips and sentences of the same toy video coincide -> every cycle returns home. Pairing the clips
    with another video's sentences breaks it. (A permutation of the same sentences would not: the cycle
    is invariant to the order of the other modality.)"""
    torch.manual_seed(0)
    clips = 10 * torch.eye(8)[:5].unsqueeze(0)  # (1, 5, 8) well separated
    mask = torch.ones(1, 5, dtype=torch.bool)
    cc, ss = cycle_consistency_loss(clips, mask, clips.clone(), mask, num_samples=-1)
    assert cc.item() < 1e-4 and ss.item() < 1e-4
    other = 10 * torch.randn(1, 5, 8) / 8**0.5
    cc, ss = cycle_consistency_loss(clips, mask, other, mask, num_samples=-1)
    assert cc.item() > 0.1 and ss.item() > 0.1
    # padded positions are ignored
    padded = torch.cat([clips, torch.randn(1, 2, 8)], dim=1)
    pmask = torch.tensor([[True] * 5 + [False] * 2])
    cc, _ = cycle_consistency_loss(padded, pmask, padded, pmask, num_samples=-1)
    assert cc.item() < 1e-4
    # the official single random sample per sequence is also zero when aligned
    cc, _ = cycle_consistency_loss(clips, mask, clips, mask, num_samples=1)
    assert cc.item() < 1e-4


def test_total_loss_backward():
    torch.manual_seed(0)
    model = Coot(_tiny())
    vf, vm = _pad([torch.randn(6, 12), torch.randn(4, 12)])
    tf, tm = _pad([torch.randn(8, 10), torch.randn(5, 10)])
    vo = model.encode_video(vf, vm, [[(0, 3), (3, 6)], [(0, 2), (2, 4)]])
    to = model.encode_text(tf, tm, [[(0, 4), (4, 8)], [(0, 2), (2, 5)]])
    out = coot_loss(vo, to, model.config)
    assert torch.isfinite(out.total) and out.total.item() > 0
    out.total.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_save_load_round_trip(tmp_path):
    from models.io import load_pretrained, save_pretrained

    torch.manual_seed(0)
    model = build_coot(_tiny()).eval()
    save_pretrained(model, tmp_path)
    loaded = load_pretrained(tmp_path, config_cls=CootConfig, build_fn=build_coot)
    assert loaded.config == model.config
    x = torch.randn(1, 6, 12)
    with torch.no_grad():
        a = model.encode_video(x, None, [[(0, 2), (2, 6)]])
        b = loaded.encode_video(x, None, [[(0, 2), (2, 6)]])
    torch.testing.assert_close(a.vid_emb, b.vid_emb)
