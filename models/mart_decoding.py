"""MART decoding: one sentence per segment, memory carried across segments; greedy or beam search.

Behaviour follows the official translator (mart/translator.py): [UNK] is never produced; after each
sentence, words after its first [EOS] become [PAD] and one teacher-forced pass over the finished sentence
computes the memory for the next segment. With ``use_cache`` the video prefix is encoded once and each
new word attends to cached keys/values (self-attention and memory-augmented attention) instead of
re-running the whole sequence as the official code does; both give the same words.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from models.mart import BOS, EOS, PAD, SPECIAL_TOKENS, UNK, Mart, MartStepInputs, Vocab, make_step_inputs


@dataclass(frozen=True)
class DecodingOptions:
    method: str = "greedy"  # "greedy" or "beam"
    beam_size: int = 2  # official COOT+MART setting
    min_length: int = 5  # beam only: words before [EOS] may end a sentence (official min_sen_len)
    length_penalty: str = "none"  # beam ranking: "none" (sum of log-probs), "avg" (per word), "wu" (GNMT)
    length_penalty_alpha: float = 0.0  # for "wu"
    use_cache: bool = True  # key/value cache (same result, faster)
    # Repetition (punctuation-only n-grams and n-grams with a special token may always repeat):
    block_ngram_repeat: int = 0  # official option: no n-gram twice within a sentence (0: off)
    block_ngram_across: int = 0  # no n-gram a previous sentence of the same video said (0: off); MART's
    # R@4 counts exactly these repeats, which an under-trained model makes in most segments


@dataclass
class MartGeneration:
    """tokens: per step (N, max_t_len) ids [BOS] words [EOS] [PAD]..; scores: per step (N, T, V) logits of
    each generated position for greedy, (N,) final beam score for beam; memory: per layer (N, M, D) after
    the last step (None when not recurrent)."""

    tokens: list[torch.Tensor]
    scores: list[torch.Tensor]
    memory: list[torch.Tensor] | None


class _FullRunner:
    """Reference path (official): re-run the whole joint sequence for every new word."""

    def __init__(self, model: Mart, prev_ms: list[torch.Tensor] | None, inputs: MartStepInputs):
        lv = model.config.max_v_len
        self.model, self.prev_ms = model, prev_ms
        self.ids = inputs.input_ids.clone()
        self.masks = inputs.input_masks.clone()
        self.ids[:, lv:], self.masks[:, lv:] = PAD, 0.0  # text hidden: only the video part is given
        self.feats, self.types = inputs.video_features, inputs.token_type_ids

    def step(self, token: torch.Tensor, position: int) -> torch.Tensor:
        """token (N,) placed at ``position`` -> logits (N, V) predicting the next word."""
        self.ids[:, position], self.masks[:, position] = token, 1.0
        out = self.model.forward_step(self.prev_ms, self.ids, self.feats, self.masks, self.types)
        return out.prediction_scores[:, position]

    def reorder(self, index: torch.Tensor) -> None:
        self.ids, self.masks = self.ids[index], self.masks[index]
        self.feats, self.types = self.feats[index], self.types[index]
        if self.prev_ms is not None:
            self.prev_ms = [m[index] for m in self.prev_ms]


class _CachedRunner:
    """Incremental path: keys/values of every layer's self-attention and memory-augmented attention are
    cached; video positions never attend to text, so the prefix is computed once."""

    def __init__(self, model: Mart, prev_ms: list[torch.Tensor] | None, inputs: MartStepInputs):
        cfg = model.config
        lv = cfg.max_v_len
        self.model, self.recurrent = model, cfg.recurrent
        self.feats, self.types = inputs.video_features, inputs.token_type_ids
        hidden = model.embeddings(
            inputs.input_ids[:, :lv], self.feats[:, :lv], self.types[:, :lv]
        )  # (N, Lv, D)
        self.key_mask = inputs.input_masks[:, :lv].to(hidden.dtype)  # (N, Lv), valid keys
        n = hidden.shape[0]
        self.kv: list[tuple[torch.Tensor, torch.Tensor]] = []  # self-attention (N, nh, Lk, dh) each
        self.mem_kv: list[tuple[torch.Tensor, torch.Tensor]] = []  # memory attention (N, nh, M + Lk, dh)
        self.n_cells = cfg.n_memory_cells
        for i, layer in enumerate(model.encoder.layer):
            sa = layer.attention.self
            k, v = sa.heads(sa.key(hidden)), sa.heads(sa.value(hidden))
            self.kv.append((k, v))
            mask = self.key_mask[:, None, :].expand(n, lv, lv)
            attention_output = layer.attention.output(
                sa.attend(sa.heads(sa.query(hidden)), k, v, mask), hidden
            )
            intermediate = layer.hidden_intermediate(attention_output)
            if self.recurrent:
                prev = (
                    prev_ms[i]
                    if prev_ms is not None
                    else layer.memory_initilizer(intermediate, self.key_mask)
                )
                ma = layer.memory_augmented_attention
                concat = torch.cat([prev, intermediate], dim=1)  # (N, M + Lv, D)
                mk, mv = ma.heads(ma.key(concat)), ma.heads(ma.value(concat))
                self.mem_kv.append((mk, mv))
                mem_mask = self._mem_mask()[:, None, :].expand(n, lv, -1)
                mem_out = ma.attend(ma.heads(ma.query(intermediate)), mk, mv, mem_mask)
                hidden = layer.output(layer.memory_projection(mem_out), attention_output)
            else:
                hidden = layer.output(intermediate, attention_output)

    def _mem_mask(self) -> torch.Tensor:
        ones = self.key_mask.new_ones(self.key_mask.shape[0], self.n_cells)
        return torch.cat([ones, self.key_mask], dim=1)  # (N, M + Lk)

    def step(self, token: torch.Tensor, position: int) -> torch.Tensor:
        """token (N,) placed at ``position`` -> logits (N, V) predicting the next word."""
        model, p = self.model, position
        pos = torch.tensor([p], device=token.device)
        hidden = model.embeddings(token[:, None], self.feats[:, p : p + 1], self.types[:, p : p + 1], pos)
        self.key_mask = torch.cat([self.key_mask, self.key_mask.new_ones(len(token), 1)], dim=1)
        for i, layer in enumerate(model.encoder.layer):
            sa = layer.attention.self
            k, v = self.kv[i]
            k = torch.cat([k, sa.heads(sa.key(hidden))], dim=2)
            v = torch.cat([v, sa.heads(sa.value(hidden))], dim=2)
            self.kv[i] = (k, v)
            ctx = sa.attend(sa.heads(sa.query(hidden)), k, v, self.key_mask[:, None, :])
            attention_output = layer.attention.output(ctx, hidden)  # (N, 1, D)
            intermediate = layer.hidden_intermediate(attention_output)
            if self.recurrent:
                ma = layer.memory_augmented_attention
                mk, mv = self.mem_kv[i]
                mk = torch.cat([mk, ma.heads(ma.key(intermediate))], dim=2)
                mv = torch.cat([mv, ma.heads(ma.value(intermediate))], dim=2)
                self.mem_kv[i] = (mk, mv)
                mem_out = ma.attend(ma.heads(ma.query(intermediate)), mk, mv, self._mem_mask()[:, None, :])
                hidden = layer.output(layer.memory_projection(mem_out), attention_output)
            else:
                hidden = layer.output(intermediate, attention_output)
        return model.decoder(hidden)[:, 0]

    def reorder(self, index: torch.Tensor) -> None:
        self.feats, self.types, self.key_mask = self.feats[index], self.types[index], self.key_mask[index]
        self.kv = [(k[index], v[index]) for k, v in self.kv]
        self.mem_kv = [(k[index], v[index]) for k, v in self.mem_kv]


def mask_tokens_after_eos(
    ids: torch.Tensor, masks: torch.Tensor, start: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions after the first [EOS] at or after ``start`` become [PAD] / mask 0. ids, masks (N, L)."""
    pos = torch.arange(ids.shape[1], device=ids.device)
    is_eos = (ids == EOS) & (pos[None, :] >= start)
    first = torch.where(is_eos.any(dim=1), is_eos.float().argmax(dim=1), ids.shape[1])  # (N,)
    after = pos[None, :] > first[:, None]
    return ids.masked_fill(after, PAD), masks.masked_fill(after, 0.0)


class NgramBlocker:
    """Bans next words that would repeat an n-gram: within the sentence being decoded (``within``, the
    official ``block_ngram_repeat``) or one said by an earlier sentence of the same video (``across``).
    N-grams holding an ``exempt`` id (punctuation, special tokens) may repeat."""

    def __init__(self, within: int, across: int, exempt: set[int], n_videos: int):
        self.within, self.across, self.exempt = within, across, exempt
        self.said: list[dict[tuple, set[int]]] = [{} for _ in range(n_videos)]  # prefix -> next words

    @property
    def active(self) -> bool:
        return self.within > 0 or self.across > 0

    def _ngrams(self, words: list[int], n: int):
        for i in range(len(words) - n + 1):
            g = tuple(words[i : i + n])
            if not self.exempt.intersection(g):
                yield g

    def ban(self, scores: torch.Tensor, seqs: torch.Tensor, video: list[int], value: float) -> None:
        """scores (R, V) for the word after seqs (R, t) ([BOS] first); row r decodes video video[r]."""
        for r, row in enumerate(seqs.tolist()):
            words = [w for w in row[1:] if w != PAD]
            if words and words[-1] == EOS:
                continue
            banned: set[int] = set()
            for n, table in ((self.within, None), (self.across, self.said[video[r]])):
                if n <= 0 or len(words) < n - 1:
                    continue
                prefix = tuple(words[len(words) - n + 1 :])
                if self.exempt.intersection(prefix):
                    continue
                if table is None:  # this sentence's own n-grams
                    banned |= {g[-1] for g in self._ngrams(words, n) if g[:-1] == prefix}
                else:
                    banned |= table.get(prefix, set())
            if banned:
                scores[r, list(banned)] = value

    def add(self, tokens: torch.Tensor) -> None:
        """Remember the n-grams of each video's finished sentence: tokens (N, T) [BOS] words [EOS] [PAD].."""
        if self.across <= 0:
            return
        for i, row in enumerate(tokens.tolist()):
            words = [w for w in row if w not in (BOS, PAD)]
            for g in self._ngrams(words, self.across):
                self.said[i].setdefault(g[:-1], set()).add(g[-1])


def _greedy(
    model: Mart, runner, n: int, device, blocker: NgramBlocker | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """-> tokens (N, T) starting with [BOS], logits (N, T, V) at each of those positions."""
    cfg = model.config
    token = torch.full((n,), BOS, dtype=torch.long, device=device)
    tokens, logits_all = [], []
    done = torch.zeros(n, dtype=torch.bool, device=device)
    for t in range(cfg.max_t_len):
        tokens.append(token)
        done = done | (token == EOS)
        if done.all():
            break
        logits = runner.step(token, cfg.max_v_len + t).clone()
        logits[:, UNK] = -1e10
        if blocker is not None and blocker.active:
            blocker.ban(logits, torch.stack(tokens, dim=1), list(range(n)), -1e10)
        logits_all.append(logits)
        token = logits.argmax(dim=-1)
    return torch.stack(tokens, dim=1), torch.stack(logits_all, dim=1)


def _beam(
    model: Mart, runner, n: int, device, opts: DecodingOptions, blocker: NgramBlocker | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Beam search; finished beams stay in the beam, frozen (only [PAD] at log-prob 0).
    -> tokens (N, T) starting with [BOS], scores (N,) of the chosen beams."""
    cfg, k = model.config, opts.beam_size
    runner.reorder(torch.arange(n, device=device).repeat_interleave(k))  # (N * K) rows
    scores = torch.full((n, k), float("-inf"), device=device)
    scores[:, 0] = 0.0  # all beams start identical: expand only the first
    seqs = torch.full((n * k, 1), BOS, dtype=torch.long, device=device)
    finished = torch.zeros(n * k, dtype=torch.bool, device=device)
    token = seqs[:, 0]
    for t in range(cfg.max_t_len - 1):  # [BOS] + at most max_t_len - 1 words ([EOS] included)
        logits = runner.step(token, cfg.max_v_len + t).clone()
        logits[:, UNK] = -1e10
        logp = F.log_softmax(logits, dim=-1)  # (N * K, V)
        if t < opts.min_length:
            logp[:, EOS] = float("-inf")
        if blocker is not None and blocker.active:
            blocker.ban(logp, seqs, [r // k for r in range(n * k)], float("-inf"))
        logp[finished] = float("-inf")
        logp[finished, PAD] = 0.0
        vocab = logp.shape[-1]
        cand = (scores.view(-1, 1) + logp).view(n, k * vocab)
        scores, flat = cand.topk(k, dim=1)  # (N, K)
        src = (torch.arange(n, device=device)[:, None] * k + flat // vocab).view(-1)  # (N * K,)
        token = (flat % vocab).view(-1)
        runner.reorder(src)
        seqs = torch.cat([seqs[src], token[:, None]], dim=1)
        finished = finished[src] | (token == EOS)
        if finished.all():
            break
    lengths = ((seqs != PAD) & (seqs != BOS)).sum(dim=1).clamp(min=1).float().view(n, k)
    if opts.length_penalty == "avg":
        ranked = scores / lengths
    elif opts.length_penalty == "wu":
        ranked = scores / ((5 + lengths) / 6.0) ** opts.length_penalty_alpha
    elif opts.length_penalty == "none":
        ranked = scores
    else:
        raise ValueError(f"unknown length penalty {opts.length_penalty}")
    best = ranked.argmax(dim=1)  # (N,)
    rows = torch.arange(n, device=device) * k + best
    return seqs[rows], scores.gather(1, best[:, None]).squeeze(1)


@torch.no_grad()
def generate(
    model: Mart, steps: Sequence[MartStepInputs], options: DecodingOptions = DecodingOptions()
) -> MartGeneration:
    """Caption every step (segment) of a batch of videos, one sentence each, memory carried across steps.

    Args:
        steps: per segment the inputs from ``make_step_inputs`` (text part ignored).
    Returns:
        MartGeneration.
    """
    cfg = model.config
    lv, lt = cfg.max_v_len, cfg.max_t_len
    prev_ms = None
    all_tokens, all_scores = [], []
    blocker = None
    if options.block_ngram_repeat > 0 or options.block_ngram_across > 0:
        vocab = cfg.get_vocab()
        words = vocab.words if vocab is not None else list(SPECIAL_TOKENS)
        exempt = {
            i for i, w in enumerate(words) if i < len(SPECIAL_TOKENS) or not any(c.isalnum() for c in w)
        }
        n_videos = steps[0].input_ids.shape[0] if steps else 0
        blocker = NgramBlocker(options.block_ngram_repeat, options.block_ngram_across, exempt, n_videos)
    for inputs in steps:
        n, device = inputs.input_ids.shape[0], inputs.input_ids.device
        runner_cls = _CachedRunner if options.use_cache else _FullRunner
        runner = runner_cls(model, prev_ms, inputs)
        if options.method == "greedy":
            seq, scores = _greedy(model, runner, n, device, blocker)
        elif options.method == "beam":
            seq, scores = _beam(model, runner, n, device, options, blocker)
        else:
            raise ValueError(f"unknown decoding method {options.method}")
        ids, masks = inputs.input_ids.clone(), inputs.input_masks.clone()
        ids[:, lv:], masks[:, lv:] = PAD, 0.0
        ids[:, lv : lv + seq.shape[1]], masks[:, lv : lv + seq.shape[1]] = seq, 1.0
        ids, masks = mask_tokens_after_eos(ids, masks, lv)
        if blocker is not None:
            blocker.add(ids[:, lv:])
        if cfg.recurrent:  # memory for the next segment, computed as in training
            prev_ms = model.forward_step(
                prev_ms, ids, inputs.video_features, masks, inputs.token_type_ids
            ).memory
        all_tokens.append(ids[:, lv : lv + lt])
        all_scores.append(scores)
    return MartGeneration(tokens=all_tokens, scores=all_scores, memory=prev_ms)


def caption_segments(
    model: Mart,
    vocab: Vocab,
    segment_feats: torch.Tensor,
    options: DecodingOptions = DecodingOptions(),
) -> list[str]:
    """One video's captions. segment_feats: (S, Dv) one vector per segment in time order (COOT+MART:
    [video embedding ; clip embedding]) -> S sentences."""
    steps = [
        make_step_inputs(model.config, segment_feats[s][None, None]) for s in range(segment_feats.shape[0])
    ]
    gen = generate(model, steps, options)
    return [vocab.decode(t[0].tolist()) for t in gen.tokens]
