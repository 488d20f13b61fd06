"""The learner side of the policy's log-probabilities (differentiable; every trainer uses it).

Convention (shared with ``HFPolicy``): a token's log-prob is taken under
softmax(logits / temperature) over the whole vocabulary (top-p truncation is a sampling
detail and is NOT applied to log-probs). A turn's action log-prob is

    generate mode:  log pi(a|s) = sum_t log p(y_t | prompt, y_<t)          (y includes the end token)
    choose mode:    score_j     = sum_t log p(c_j,t | prompt, c_j,<t)       for each admissible c_j
                    log pi(a|s) = log softmax_j(score_j)[choice]

Both the rollout (``HFPolicy``, under no_grad) and the learner call ``continuation_logprobs``:
one forward of the left-padded prompts fills a KV cache, then one forward of every prompt's
continuations (candidates or response) packed into one sequence after it, under a block-causal
4D mask: each continuation sees the prompt and its own earlier tokens only. So the prompt is
encoded and stored once however many candidates it has (Twenty Questions: 221 candidates on a
1,600-token prompt), and rollout and learner log-probs agree to float precision. Attention
kernels that take no custom mask (flash-attention 2) get one cache row per continuation instead.
"""

from __future__ import annotations

import inspect
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from agentgym.trajectory import Turn


def left_pad(seqs: Sequence[Sequence[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left-padded ids [B, P], attention mask [B, P] and position ids [B, P] (0 at each row's first token)."""
    P = max(1, max(len(s) for s in seqs))
    ids = torch.full((len(seqs), P), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), P), dtype=torch.long)
    for i, s in enumerate(seqs):
        if len(s):
            ids[i, P - len(s):] = torch.as_tensor(list(s), dtype=torch.long)
            mask[i, P - len(s):] = 1
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids.to(device), mask.to(device), pos.to(device)


def _token_logprobs(logits: torch.Tensor, tokens: torch.Tensor, temperature: float) -> torch.Tensor:
    """log softmax(logits / T) at ``tokens``; logits [..., V], tokens [...] -> [...] (float32)."""
    logits = logits.float() / temperature
    return logits.gather(-1, tokens.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)


def _device(model) -> torch.device:
    return next(model.parameters()).device


def _base(model):
    """The transformers model inside a DDP wrapper (``.module``) and a PEFT model."""
    model = getattr(model, "module", model)
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def cache_kwarg(model) -> str:
    """The forward() keyword for the KV cache: ``cache`` in recent transformers, ``past_key_values`` before."""
    base = _base(model)
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def last_logits_kwargs(model) -> dict:
    """Ask for the last position's logits only (a 49k-vocab head over a 300-token prompt costs as
    much as the model) when the model's forward supports it."""
    base = _base(model)
    return {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(base.forward).parameters else {}


def get_cache(output):
    cache = output.get("cache")
    return cache if cache is not None else output.get("past_key_values")


def continuation_logprobs(model, prompts: Sequence[Sequence[int]], conts: Sequence[Sequence[Sequence[int]]],
                          temperature: float, pad_id: int, max_rows: int = 64) -> list[list[torch.Tensor]]:
    """Per-token log-probs of each continuation given its prompt.

    prompts: B token-id lists; conts[i]: K_i continuations of prompt i (token-id lists).
    Returns out[i][k]: a 1-D float32 tensor [len(conts[i][k])]. Differentiable unless called
    under no_grad. Requests are processed in groups of at most ``max_rows`` continuations.
    """
    T = temperature if temperature and temperature > 0 else 1.0
    device = _device(model)
    out: list[list[torch.Tensor]] = [[torch.zeros(0, device=device)] * len(c) for c in conts]
    groups, cur, rows = [], [], 0
    for i, c in enumerate(conts):
        if not c:
            continue
        if cur and rows + len(c) > max_rows:
            groups.append(cur)
            cur, rows = [], 0
        cur.append(i)
        rows += len(c)
    if cur:
        groups.append(cur)

    rest = _packed_rest if _takes_4d_mask(model) else _copied_rest
    for group in groups:
        seqs = [[list(c) for c in conts[i]] for i in group]                           # [g][K_i] token lists
        if not any(s for row in seqs for s in row):
            continue
        ids, mask, pos = left_pad([prompts[i] for i in group], pad_id, device)        # [g, P]
        o = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, **last_logits_kwargs(model))
        firsts = [(gi, k, s[0]) for gi, row in enumerate(seqs) for k, s in enumerate(row) if s]
        lp_first = _token_logprobs(o.logits[[gi for gi, _, _ in firsts], -1],
                                   torch.tensor([t for _, _, t in firsts], device=device), T)   # [N]
        lp_rest = rest(model, get_cache(o), mask, pos, seqs, T, pad_id)               # [g][K_i] tensors
        for n, (gi, k, _) in enumerate(firsts):
            out[group[gi]][k] = torch.cat([lp_first[n:n + 1], lp_rest[gi][k]])
    return out


def _takes_4d_mask(model) -> bool:
    """Whether the model's attention takes a custom 4D float mask (transformers' sdpa and eager do)."""
    return getattr(_base(model).config, "_attn_implementation", "eager") in ("sdpa", "eager")


def _padded(rows: Sequence[Sequence[int]], fill: int, width: int, device) -> torch.Tensor:
    """[len(rows), width] long tensor of right-padded rows."""
    out = torch.full((len(rows), width), fill, dtype=torch.long)
    for r, row in enumerate(rows):
        out[r, :len(row)] = torch.as_tensor(list(row), dtype=torch.long)
    return out.to(device)


def _packed_rest(model, cache, mask, pos, seqs, T, pad_id) -> list[list[torch.Tensor]]:
    """Log-probs of tokens 2.. of every continuation: all of a prompt's continuations in one row after
    its cache, continuation k's token j at position P + j, attending the prompt and k's tokens < j."""
    device = mask.device
    g, P = mask.shape
    inputs, targets, segment, offset = ([[] for _ in range(g)] for _ in range(4))
    spans = [[] for _ in range(g)]                                                    # (start, end) of each continuation
    for gi, row in enumerate(seqs):
        for k, s in enumerate(row):
            n = max(len(s) - 1, 0)
            spans[gi].append((len(inputs[gi]), len(inputs[gi]) + n))
            inputs[gi] += s[:-1]
            targets[gi] += s[1:]
            segment[gi] += [k] * n
            offset[gi] += range(n)                                                    # token j of its continuation
    L = max(len(x) for x in inputs)
    if L == 0:
        return [[torch.zeros(0, device=device) for _ in row] for row in seqs]
    ids, tgt = _padded(inputs, pad_id, L, device), _padded(targets, pad_id, L, device)
    seg, offset = _padded(segment, -1, L, device), _padded(offset, 0, L, device)      # seg -1: padding
    q = torch.arange(L, device=device)
    same = (seg[:, :, None] == seg[:, None, :]) & (q[None, None, :] <= q[None, :, None])   # [g, L, L] block-causal
    sees_prompt = mask.bool()[:, None, :].expand(g, L, P)                             # padded queries too: no empty row
    allowed = torch.cat([sees_prompt, same], -1)[:, None]                             # [g, 1, L, P + L]
    dtype = next(model.parameters()).dtype
    mask4d = torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill(~allowed, torch.finfo(dtype).min)
    o = model(input_ids=ids, attention_mask=mask4d, position_ids=pos[:, -1:] + 1 + offset, use_cache=False,
              **{cache_kwarg(model): cache})
    lp = _token_logprobs(o.logits, tgt, T)                                            # [g, L]
    return [[lp[gi, start:end] for start, end in row] for gi, row in enumerate(spans)]


def _copied_rest(model, cache, mask, pos, seqs, T, pad_id) -> list[list[torch.Tensor]]:
    """``_packed_rest`` for attention kernels without custom masks: one cache row per continuation."""
    device = mask.device
    row_of = [(gi, k) for gi, row in enumerate(seqs) for k in range(len(row))]
    out = [[torch.zeros(0, device=device) for _ in row] for row in seqs]
    flat = [seqs[gi][k] for gi, k in row_of]
    C = max(len(s) - 1 for s in flat)
    if C <= 0:
        return out
    ids, tgt = _padded([s[:-1] for s in flat], pad_id, C, device), _padded([s[1:] for s in flat], pad_id, C, device)
    cmask = _padded([[1] * (len(s) - 1) for s in flat], 0, C, device)
    idx = torch.tensor([gi for gi, _ in row_of], device=device)                       # [N]
    cache.reorder_cache(idx)                                                          # one cache row per continuation
    o = model(input_ids=ids, attention_mask=torch.cat([mask[idx], cmask], 1),
              position_ids=pos[idx, -1:] + 1 + torch.arange(C, device=device), use_cache=False,
              **{cache_kwarg(model): cache})
    lp = _token_logprobs(o.logits, tgt, T)                                            # [N, C]
    for r, (gi, k) in enumerate(row_of):
        out[gi][k] = lp[r, :max(len(flat[r]) - 1, 0)]
    return out


def _conts(turn: Turn) -> list[list[int]]:
    return turn.candidate_ids if turn.choice is not None and turn.candidate_ids else [turn.response_ids]


def action_logprobs(model, turns: Sequence[Turn], temperature: float, pad_id: int) -> torch.Tensor:
    """log pi(action | prompt) for each turn, [B], differentiable (see the module docstring)."""
    per = continuation_logprobs(model, [t.prompt_ids for t in turns], [_conts(t) for t in turns], temperature, pad_id)
    out = []
    for t, lps in zip(turns, per):
        if t.choice is not None and t.candidate_ids:
            scores = torch.stack([lp.sum() for lp in lps])                            # [K]
            out.append(torch.log_softmax(scores, 0)[t.choice])
        else:
            out.append(lps[0].sum())
    return torch.stack(out)


def token_logprobs(model, turns: Sequence[Turn], temperature: float, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-level view: (logprobs [B, L], mask [B, L]) over each turn's response tokens.
    A choose-mode turn is one decision: its choice log-prob sits at position 0, mask 1 there only."""
    per = continuation_logprobs(model, [t.prompt_ids for t in turns], [_conts(t) for t in turns], temperature, pad_id)
    rows = []
    for t, lps in zip(turns, per):
        if t.choice is not None and t.candidate_ids:
            rows.append(torch.log_softmax(torch.stack([lp.sum() for lp in lps]), 0)[t.choice].reshape(1))
        else:
            rows.append(lps[0])
    L = max(1, max(r.numel() for r in rows))
    logprobs = torch.stack([F.pad(r, (0, L - r.numel())) for r in rows])                # [B, L]
    mask = torch.stack([F.pad(torch.ones_like(r), (0, L - r.numel())) for r in rows])   # [B, L]
    return logprobs, mask


def old_token_logprobs(turns: Sequence[Turn], device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """The rollout's recorded log-probs in the layout of ``token_logprobs`` (no model needed)."""
    rows = [[t.choice_logprob] if t.choice is not None and t.choice_logprob is not None else list(t.response_logprobs)
            for t in turns]
    L = max(1, max(len(r) for r in rows))
    logprobs, mask = torch.zeros((len(rows), L)), torch.zeros((len(rows), L))
    for i, r in enumerate(rows):
        logprobs[i, :len(r)] = torch.tensor(r, dtype=torch.float32)
        mask[i, :len(r)] = 1.0
    return logprobs.to(device), mask.to(device)


class ValueHead(nn.Module):
    """V(s) from the policy's last hidden state at the prompt's final token (PPO critic)."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.linear = nn.Linear(hidden_size, 1)
        nn.init.normal_(self.linear.weight, std=1.0 / (hidden_size + 1))
        nn.init.zeros_(self.linear.bias)

    @classmethod
    def for_model(cls, model) -> "ValueHead":
        return cls(model.config.hidden_size).to(_device(model))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.linear(hidden.float()).squeeze(-1)


def values(model, value_head: ValueHead, turns: Sequence[Turn], pad_id: int = 0) -> torch.Tensor:
    """V(prompt) for each turn, [B]. Gradients reach the head and the shared trunk; detach the
    trunk yourself (``torch.no_grad`` around the model) for a separate critic."""
    ids, mask, pos = left_pad([t.prompt_ids for t in turns], pad_id, _device(model))
    o = model(input_ids=ids, attention_mask=mask, position_ids=pos, output_hidden_states=True, use_cache=False)
    return value_head(o.hidden_states[-1][:, -1])                                       # [B]
