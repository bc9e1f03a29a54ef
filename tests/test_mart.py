"""MART: parity with the official code, memory, decoding (cache == no cache), vocabulary, a learning test."""

import json
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from models.mart import (
    BOS,
    EOS,
    PAD,
    SPECIAL_TOKENS,
    UNK,
    Mart,
    MartConfig,
    Vocab,
    build_mart,
    make_step_inputs,
)
from models.mart_decoding import DecodingOptions, caption_segments, generate

torch.set_num_threads(1)
PARITY = Path(__file__).parent / "data" / "mart_parity_small.safetensors"


def _tiny(**kw) -> MartConfig:
    base = dict(
        vocab_size=30,
        hidden_size=32,
        num_attention_heads=4,
        intermediate_size=32,
        word_vec_size=16,
        video_feature_size=12,
        max_v_len=4,
        max_t_len=10,
    )
    base.update(kw)
    return MartConfig(**base)


def _steps(cfg: MartConfig, n_steps: int = 3, n: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.tensor([[1, 1], [1, 0], [1, 1]], dtype=torch.bool)[:n]
    return [
        make_step_inputs(cfg, torch.randn(n, 2, cfg.video_feature_size, generator=g), mask)
        for _ in range(n_steps)
    ]


def test_parity_with_official_code():
    """Official RecursiveTransformer state dict loads strictly; per-step prediction scores, the final
    memory and the summed label-smoothed loss match the official outputs."""
    f = safe_open(str(PARITY), "pt")
    meta = f.metadata()
    t = {k: f.get_tensor(k) for k in f.keys()}
    official = json.loads(meta["config"])
    cfg = MartConfig.small()
    for key, value in asdict(cfg).items():
        if key not in ("model_type", "vocab"):  # ours only
            assert official[key] == value, key
    assert official["max_position_embeddings"] == cfg.max_position_embeddings
    assert json.loads(meta["special_ids"]) == {
        "PAD": PAD,
        "CLS": 1,
        "SEP": 2,
        "VID": 3,
        "BOS": BOS,
        "EOS": EOS,
    }
    model = Mart(cfg).eval()
    model.load_state_dict(
        {k[len("model.") :]: v for k, v in t.items() if k.startswith("model.")}, strict=True
    )
    n = int(meta["steps"])
    get = lambda name: [t[f"input.step{s}.{name}"] for s in range(n)]  # noqa: E731
    with torch.no_grad():
        out = model(
            get("input_ids"), get("video_features"), get("input_masks"), get("token_type_ids"), get("labels")
        )
    for s in range(n):
        err = (out.prediction_scores[s] - t[f"output.step{s}.prediction_scores"]).abs().max().item()
        assert err < 1e-4, f"step {s}: {err}"
    for i, mem in enumerate(out.memory):
        assert (mem - t[f"output.final_memory.layer{i}"]).abs().max().item() < 1e-4
    assert abs(out.loss.item() - t["output.caption_loss"].item()) < 1e-4


def test_tiny_shapes_and_json_config():
    cfg = _tiny()
    assert MartConfig(**json.loads(json.dumps(asdict(cfg)))) == cfg
    model = Mart(cfg).eval()
    steps = _steps(cfg)
    out = model(
        [s.input_ids for s in steps],
        [s.video_features for s in steps],
        [s.input_masks for s in steps],
        [s.token_type_ids for s in steps],
    )
    assert out.loss is None
    assert [p.shape for p in out.prediction_scores] == [(3, 14, 30)] * 3
    assert [m.shape for m in out.memory] == [(3, 1, 32)] * 2
    flat = Mart(_tiny(recurrent=False))
    assert "encoder.layer.0.memory_intermediate.dense.weight" in flat.state_dict()
    assert not any("memory_updater" in k for k in flat.state_dict())


def test_step_inputs_layout():
    cfg = _tiny()
    x = make_step_inputs(
        cfg, torch.ones(2, 2, 12), torch.tensor([[True, True], [True, False]]), sentences=[[7, 8], None]
    )
    assert x.input_ids[0].tolist() == [1, 3, 3, 2, BOS, 7, 8, EOS, 0, 0, 0, 0, 0, 0]
    assert x.input_ids[1].tolist()[:5] == [1, 3, 2, 0, 0]
    assert x.input_masks[0].tolist() == [1] * 8 + [0] * 6
    assert x.labels[0].tolist() == [-1] * 4 + [7, 8, EOS] + [-1] * 7  # word at i + 1
    assert (x.labels[1] == -1).all()  # a video without this step contributes no loss
    assert x.video_features[1, 2].abs().sum() == 0 and x.video_features[0, 2].abs().sum() > 0
    assert x.token_type_ids[0].tolist() == [0] * 4 + [1] * 10


def test_memory_gates_in_range_and_memory_carried():
    torch.manual_seed(0)
    cfg = _tiny(initializer_range=0.3)
    model = Mart(cfg).eval()
    steps = _steps(cfg, n_steps=2)
    with torch.no_grad():
        first = model.forward_step(
            None, steps[0].input_ids, steps[0].video_features, steps[0].input_masks, steps[0].token_type_ids
        )
        second = model.forward_step(
            first.memory,
            steps[1].input_ids,
            steps[1].video_features,
            steps[1].input_masks,
            steps[1].token_type_ids,
        )
        fresh = model.forward_step(
            None, steps[1].input_ids, steps[1].video_features, steps[1].input_masks, steps[1].token_type_ids
        )
    for gate in first.gates + second.gates:
        assert gate.min() >= 0 and gate.max() <= 1
    # the previous segment changes what is predicted for this one
    assert not torch.allclose(second.prediction_scores, fresh.prediction_scores, atol=1e-4)


@pytest.mark.parametrize("recurrent", [True, False])
def test_cached_decoding_equals_full_recompute(recurrent):
    torch.manual_seed(0)
    cfg = _tiny(recurrent=recurrent, initializer_range=0.3)
    model = Mart(cfg).eval()
    steps = _steps(cfg)
    cached = generate(model, steps, DecodingOptions(use_cache=True))
    full = generate(model, steps, DecodingOptions(use_cache=False))
    for a, b, sa, sb in zip(cached.tokens, full.tokens, cached.scores, full.scores):
        assert torch.equal(a, b)
        torch.testing.assert_close(sa, sb, atol=1e-4, rtol=1e-4)
    if recurrent:
        for ma, mb in zip(cached.memory, full.memory):
            torch.testing.assert_close(ma, mb, atol=1e-5, rtol=1e-5)
    for k in (1, 3):
        opts = DecodingOptions(method="beam", beam_size=k, min_length=0)
        a = generate(model, steps, opts)
        b = generate(model, steps, DecodingOptions(method="beam", beam_size=k, min_length=0, use_cache=False))
        assert all(torch.equal(x, y) for x, y in zip(a.tokens, b.tokens))
        if k == 1:  # a beam of one is greedy search
            assert all(torch.equal(x, y) for x, y in zip(a.tokens, cached.tokens))


def test_decoding_is_deterministic_and_well_formed():
    torch.manual_seed(1)
    cfg = _tiny(initializer_range=0.3)
    model = Mart(cfg).eval()
    steps = _steps(cfg)
    for opts in (DecodingOptions(), DecodingOptions(method="beam", beam_size=3, min_length=2)):
        a, b = generate(model, steps, opts), generate(model, steps, opts)
        for x, y in zip(a.tokens, b.tokens):
            assert torch.equal(x, y)
            assert x.shape == (3, cfg.max_t_len) and (x[:, 0] == BOS).all() and not (x == UNK).any()
            for row in x.tolist():  # nothing but padding after the first [EOS]
                if EOS in row:
                    assert set(row[row.index(EOS) + 1 :]) <= {PAD}
        if opts.method == "beam":  # min_length: at least 2 words before [EOS]
            for x in a.tokens:
                for row in x.tolist():
                    assert EOS not in row[:3]


def test_vocab_round_trip():
    vocab = Vocab.build(["A man opens the door.", "the man sits", "a dog barks"], min_count=2)
    assert vocab.words[: len(SPECIAL_TOKENS)] == list(SPECIAL_TOKENS)
    assert vocab.words[len(SPECIAL_TOKENS) :] == ["a", "man", "the"]
    ids = vocab.encode("The man barks")
    assert ids == [vocab.word2idx["the"], vocab.word2idx["man"], UNK]
    assert vocab.decode([BOS, *ids, EOS, 9, 9]) == "the man"
    again = Vocab.from_dict(json.loads(json.dumps(vocab.to_dict())))
    assert again.words == vocab.words
    assert Vocab.tokenize("He's here, now.") == ["he's", "here", ",", "now", "."]


def test_overfit_toy_paragraphs():
    """Learning test: on two toy videos of three segments, the summed caption loss falls and greedy
    decoding then reproduces every training sentence, the memory carrying the paragraph along."""
    torch.manual_seed(0)
    paragraphs = [
        ["a man opens the door", "the man walks in", "he sits down"],
        ["a dog runs", "the dog jumps over the fence", "it barks"],
    ]
    vocab = Vocab.build([s for p in paragraphs for s in p])
    cfg = _tiny(
        vocab_size=len(vocab),
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        memory_dropout_prob=0.0,
    )
    model = Mart(cfg)
    feats = torch.randn(2, 3, 1, cfg.video_feature_size)  # (videos, segments, 1 vector, Dv)
    steps = [
        make_step_inputs(cfg, feats[:, s], sentences=[vocab.encode(p[s]) for p in paragraphs])
        for s in range(3)
    ]
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(80):
        out = model(
            [s.input_ids for s in steps],
            [s.video_features for s in steps],
            [s.input_masks for s in steps],
            [s.token_type_ids for s in steps],
            [s.labels for s in steps],
        )
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    assert losses[49] < 0.2 * losses[0] and losses[-1] < 0.05 * losses[0]  # seen: ~0.08 and ~0.01
    model.eval()
    for v, paragraph in enumerate(paragraphs):
        assert caption_segments(model, vocab, feats[v, :, 0]) == paragraph


def test_save_load_round_trip_with_vocab(tmp_path):
    """The config (vocabulary included) and weights survive models/io.py; captions are unchanged."""
    from models.io import load_pretrained, save_pretrained

    torch.manual_seed(0)
    vocab = Vocab.build(["a man opens the door", "the dog barks"])
    cfg = MartConfig.for_vocab(
        vocab,
        **{
            k: v
            for k, v in asdict(_tiny(initializer_range=0.3)).items()
            if k not in ("vocab_size", "vocab", "model_type")
        },
    )
    model = build_mart(cfg).eval()
    save_pretrained(model, tmp_path)
    loaded = load_pretrained(tmp_path, config_cls=MartConfig, build_fn=build_mart)
    assert loaded.config == cfg and loaded.config.get_vocab().words == vocab.words
    feats = torch.randn(3, cfg.video_feature_size)
    assert caption_segments(loaded, vocab, feats) == caption_segments(model, vocab, feats)


def _ngrams(words, n):
    """n-grams without special tokens (those may repeat)."""
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return [g for g in grams if min(g) >= len(SPECIAL_TOKENS)]


@pytest.mark.parametrize("method", ["greedy", "beam"])
def test_ngram_blocking_within_and_across_sentences(method):
    """A random model fed the same segment thrice says the same sentence thrice; blocking n-grams across
    sentences makes every later sentence new, within a sentence none repeats, and the cache still agrees."""
    torch.manual_seed(2)
    cfg = _tiny(initializer_range=0.3, max_t_len=12)
    model = Mart(cfg).eval()
    same = torch.randn(3, 2, cfg.video_feature_size)
    steps = [make_step_inputs(cfg, same) for _ in range(3)]
    plain = generate(model, steps, DecodingOptions(method=method, min_length=0))
    opts = DecodingOptions(method=method, min_length=0, block_ngram_repeat=2, block_ngram_across=2)
    blocked = generate(model, steps, opts)
    full = generate(model, steps, DecodingOptions(**{**asdict(opts), "use_cache": False}))
    assert all(torch.equal(a, b) for a, b in zip(blocked.tokens, full.tokens))

    def words(tokens, v):
        row = tokens[v].tolist()
        return [w for w in row[1 : row.index(EOS) if EOS in row else None] if w != PAD]

    repeated = 0
    for v in range(3):
        plain_sents = [words(t, v) for t in plain.tokens]
        repeated += sum(
            set(_ngrams(s, 2)) & set(_ngrams(plain_sents[0], 2)) != set() for s in plain_sents[1:]
        )
        seen: set = set()
        for t in blocked.tokens:
            bigrams = _ngrams(words(t, v), 2)
            assert len(set(bigrams)) == len(bigrams)  # within the sentence
            assert not seen & set(bigrams)  # across the video's sentences
            seen |= set(bigrams)
    assert repeated > 0  # without blocking the model does repeat itself (the test has teeth)
