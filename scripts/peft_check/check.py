#!/usr/bin/env python3
"""Checks that PEFT, loading agiNet's exported LoRA adapter onto the GGUF base, computes the
logits agiNet recorded in the export's reference.json.

The base is read with the `gguf` package, dequantized to float32 and loaded into a
transformers LlamaForCausalLM (q and k rows un-permuted from llama.cpp's rotary layout, as
transformers' own GGUF loader does). The adapter is loaded with peft.PeftModel.from_pretrained.
Exit status 0 when the adapted logits match within the tolerance, 1 otherwise.
"""

import argparse
import json
import sys

import numpy as np

# agiNet runs the frozen base through candle's Q8_0 kernels, which also quantize the activations
# to 8 bits per 32-value block, so it never agrees with a float32 forward pass to rounding error.
# See README.md for the figures this tolerance was chosen from.
DEFAULT_TOLERANCE = 1e-2


def field_value(reader, key):
    f = reader.fields.get(key)
    if f is None:
        return None
    v = f.contents()
    return v


def unpermute(w, n_head):
    """GGUF (llama.cpp) rotary row order -> Hugging Face order, per head: GGUF row 2j+t is HF
    row t*head_dim/2 + j. Same as transformers' reverse_permute_weights."""
    rows = w.shape[0]
    head_dim = rows // n_head
    return (
        w.reshape(n_head, head_dim // 2, 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


def permute(w, n_head):
    """Inverse of unpermute: Hugging Face row order -> GGUF (llama.cpp) rotary row order."""
    rows = w.shape[0]
    head_dim = rows // n_head
    return (
        w.reshape(n_head, 2, head_dim // 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


def q8_0_activations(x):
    """Rounds activations as candle's Q8_0 matmul does before its integer dot products: blocks of
    32 along the last axis, d = max|x| / 127 (stored as f16), q = round(x / d)."""
    import torch

    shape = x.shape
    b = x.reshape(-1, 32)
    d = b.abs().amax(dim=-1, keepdim=True) / 127.0
    inv = torch.where(d != 0, 1.0 / d, torch.zeros_like(d))
    q = torch.round(b * inv)
    return (q * d.half().float()).reshape(shape)


def read_gguf(path):
    import gguf

    reader = gguf.GGUFReader(path)
    arch = field_value(reader, "general.architecture")
    if arch != "llama":
        raise SystemExit(f"{path}: general.architecture is {arch!r}, expected 'llama'")
    meta = {
        "n_layer": int(field_value(reader, "llama.block_count")),
        "n_embd": int(field_value(reader, "llama.embedding_length")),
        "n_ff": int(field_value(reader, "llama.feed_forward_length")),
        "n_head": int(field_value(reader, "llama.attention.head_count")),
        "n_head_kv": int(field_value(reader, "llama.attention.head_count_kv")),
        "rms_eps": float(field_value(reader, "llama.attention.layer_norm_rms_epsilon")),
    }
    base = field_value(reader, "llama.rope.freq_base")
    meta["rope_base"] = float(base) if base is not None else 10000.0
    tensors = {}
    types = {}
    for t in reader.tensors:
        w = gguf.quants.dequantize(t.data, t.tensor_type)
        # GGUF lists dims fastest-first; numpy wants them slowest-first.
        shape = tuple(int(d) for d in reversed(t.shape.tolist()))
        tensors[t.name] = np.ascontiguousarray(w.reshape(shape), dtype=np.float32)
        types[t.name] = t.tensor_type.name
    vocab = field_value(reader, "llama.vocab_size")
    if vocab is None:
        vocab = tensors["token_embd.weight"].shape[0]
    meta["n_vocab"] = int(vocab)
    return meta, tensors, types


def build_model(meta, tensors):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tied = "output.weight" not in tensors
    cfg = LlamaConfig(
        vocab_size=meta["n_vocab"],
        hidden_size=meta["n_embd"],
        intermediate_size=meta["n_ff"],
        num_hidden_layers=meta["n_layer"],
        num_attention_heads=meta["n_head"],
        num_key_value_heads=meta["n_head_kv"],
        rms_norm_eps=meta["rms_eps"],
        rope_theta=meta["rope_base"],
        max_position_embeddings=2048,
        hidden_act="silu",
        attention_bias=False,
        mlp_bias=False,
        tie_word_embeddings=tied,
        bos_token_id=256,
        eos_token_id=257,
        pad_token_id=258,
    )
    model = LlamaForCausalLM(cfg).to(torch.float32)
    sd = {"model.embed_tokens.weight": tensors["token_embd.weight"]}
    for i in range(meta["n_layer"]):
        p, h = f"blk.{i}.", f"model.layers.{i}."
        sd[h + "input_layernorm.weight"] = tensors[p + "attn_norm.weight"]
        sd[h + "self_attn.q_proj.weight"] = unpermute(tensors[p + "attn_q.weight"], meta["n_head"])
        sd[h + "self_attn.k_proj.weight"] = unpermute(tensors[p + "attn_k.weight"], meta["n_head_kv"])
        sd[h + "self_attn.v_proj.weight"] = tensors[p + "attn_v.weight"]
        sd[h + "self_attn.o_proj.weight"] = tensors[p + "attn_output.weight"]
        sd[h + "post_attention_layernorm.weight"] = tensors[p + "ffn_norm.weight"]
        sd[h + "mlp.gate_proj.weight"] = tensors[p + "ffn_gate.weight"]
        sd[h + "mlp.up_proj.weight"] = tensors[p + "ffn_up.weight"]
        sd[h + "mlp.down_proj.weight"] = tensors[p + "ffn_down.weight"]
    sd["model.norm.weight"] = tensors["output_norm.weight"]
    sd["lm_head.weight"] = tensors["output.weight" if not tied else "token_embd.weight"]
    sd = {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in sd.items()}
    own = model.state_dict()
    for k, v in sd.items():
        if own[k].shape != v.shape:
            raise SystemExit(f"{k}: GGUF gives shape {tuple(v.shape)}, model wants {tuple(own[k].shape)}")
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [m for m in missing if "rotary_emb" not in m]
    if missing or unexpected:
        raise SystemExit(f"state dict mismatch: missing {missing}, unexpected {unexpected}")
    model.eval()
    return model


def compare(logits, reference):
    diff = np.abs(logits - reference)
    max_diff = float(diff.max())
    max_ref = float(np.abs(reference).max())
    return {
        "max_abs_diff": max_diff,
        "max_abs_reference": max_ref,
        "rel_max_err": max_diff / max_ref if max_ref > 0 else float("inf"),
        "argmax_agree": int((logits.argmax(-1) == reference.argmax(-1)).sum()),
        "positions": int(reference.shape[0]),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--adapter", required=True, help="PEFT export dir (adapter_config.json, adapter_model.safetensors, reference.json)")
    ap.add_argument("--gguf", required=True, help="the skill's base GGUF")
    ap.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE, help="largest accepted max|diff| / max|reference| (default %(default)g)")
    args = ap.parse_args()

    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    import torch
    import peft
    import transformers
    import gguf  # noqa: F401

    torch.manual_seed(0)
    torch.set_grad_enabled(False)
    with open(f"{args.adapter}/reference.json") as f:
        ref = json.load(f)
    tokens = ref["tokens"]
    positions = ref["positions"]
    reference = np.asarray(ref["logits"], dtype=np.float64)

    meta, tensors, types = read_gguf(args.gguf)
    print(f"base: {meta}, tied head: {'output.weight' not in tensors}, "
          f"types: {sorted(set(types.values()))}")
    model = build_model(meta, tensors)
    model = peft.PeftModel.from_pretrained(model, args.adapter)
    model.eval()

    ids = torch.tensor([tokens], dtype=torch.long)
    adapted = model(input_ids=ids).logits[0].double().numpy()[positions]
    with model.disable_adapter():
        base = model(input_ids=ids).logits[0].double().numpy()[positions]

    # Diagnostic 1: the same PEFT model with the inputs of every frozen (Q8_0) matmul rounded the
    # way candle rounds them; what is left over is float summation order. Not used for the verdict.
    hooks = []
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear) and (name.endswith("base_layer") or name.endswith("lm_head")):
            hooks.append(mod.register_forward_pre_hook(lambda m, a: (q8_0_activations(a[0]),)))
    simulated = model(input_ids=ids).logits[0].double().numpy()[positions]
    for h in hooks:
        h.remove()

    # Diagnostic 2 (negative control): q/k lora_B rows left in GGUF's rotary order, the mistake
    # the export's un-permutation guards against; the check should flag it.
    n_heads = {"q_proj": meta["n_head"], "k_proj": meta["n_head_kv"]}
    saved = {}
    for name, p in model.named_parameters():
        proj = name.split(".")[-4] if "lora_B" in name else None
        if proj in n_heads:
            saved[name] = p.detach().clone()
            p.data = torch.from_numpy(permute(p.detach().numpy(), n_heads[proj]).copy())
    unpermuted = model(input_ids=ids).logits[0].double().numpy()[positions]
    for name, p in model.named_parameters():
        if name in saved:
            p.data = saved[name]
    if not saved:
        raise SystemExit("no q_proj/k_proj lora_B found for the negative control")

    res_adapted = compare(adapted, reference)
    res_simulated = compare(simulated, reference)
    res_wrong = compare(unpermuted, reference)
    res_base = compare(base, reference)
    adapter_effect = float(np.abs(adapted - base).max())

    def show(label, r):
        print(f"{label}: max|diff| {r['max_abs_diff']:.6g}, max|ref| {r['max_abs_reference']:.6g}, "
              f"rel {r['rel_max_err']:.3e}, argmax agree {r['argmax_agree']}/{r['positions']}")

    show("PEFT adapted vs agiNet", res_adapted)
    show("base only   vs agiNet", res_base)
    show("[diag] PEFT + Q8_0-rounded activations vs agiNet", res_simulated)
    show("[diag] q/k lora_B in GGUF row order vs agiNet", res_wrong)
    print(f"adapter effect: max|adapted - base| {adapter_effect:.6g} "
          f"(rel {adapter_effect / res_adapted['max_abs_reference']:.3e})")

    ok = res_adapted["rel_max_err"] <= args.tolerance
    print(json.dumps({
        "ok": ok,
        "tolerance": args.tolerance,
        "adapted": res_adapted,
        "base_only": res_base,
        "diag_q8_activations": res_simulated,
        "diag_qk_b_not_unpermuted": res_wrong,
        "adapter_effect_max_abs": adapter_effect,
        "adapter_version": ref.get("adapter_version"),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "peft": peft.__version__, "numpy": np.__version__},
    }))
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
