"""llama.cpp's own verdict on an agiNet adapter export: loads the base GGUF with the snapshot's
`adapter.gguf` (llama-cpp-python, which is llama.cpp compiled from source), runs the tokens of
`reference.json` and compares the logits at its positions (a decoder) or the sentence embedding
(the encoder) with agiNet's.

Exit 0 when, with the adapter, the relative max error (max|diff| / max|reference|) is at most the
tolerance and the argmax agrees at every position; the base alone (negative control) must then
be further from agiNet's logits than the adapted run is.
"""

import argparse
import json
import os
import sys
from pathlib import Path

import llama_cpp.llama_cpp as llama_cpp_c
import numpy as np
from llama_cpp import Llama, __version__ as llama_cpp_version

# llama.cpp's extra weight buffer types (the AMX repacking on CPUs that have AMX, as this
# project's machines do) crash the Q8_0 base at the first evaluation (seen with 0.3.36: a
# segmentation fault); the plain CPU buffers compute the same products. Llama() has no
# parameter for it, so its default model parameters are wrapped.
_default_model_params = llama_cpp_c.llama_model_default_params


def _model_params_without_extra_buffers():
    params = _default_model_params()
    params.use_extra_bufts = False
    return params


llama_cpp_c.llama_model_default_params = _model_params_without_extra_buffers


def logits(base: Path, tokens: list[int], lora: Path | None) -> np.ndarray:
    kwargs = dict(
        model_path=str(base),
        n_ctx=max(64, len(tokens) + 8),
        n_batch=max(64, len(tokens)),
        logits_all=True,
        # Keys and values in f32, as agiNet holds them (llama.cpp's default f16 cache rounds
        # every key and value to 11 bits).
        type_k=llama_cpp_c.GGML_TYPE_F32,
        type_v=llama_cpp_c.GGML_TYPE_F32,
        n_threads=os.cpu_count() or 1,
        verbose=False,
    )
    if lora is not None:
        kwargs["lora_path"] = str(lora)
    llm = Llama(**kwargs)
    llm.eval(tokens)
    return np.array(llm.scores[: len(tokens)], dtype=np.float64)


def embedding(base: Path, tokens: list[int], lora: Path | None) -> np.ndarray:
    """The encoder's mean-pooled, L2-normalized embedding of exactly `tokens`."""
    kwargs = dict(
        model_path=str(base),
        embedding=True,
        pooling_type=llama_cpp_c.LLAMA_POOLING_TYPE_MEAN,
        n_ctx=max(64, len(tokens) + 8),
        n_batch=max(64, len(tokens)),
        n_ubatch=max(64, len(tokens)),
        n_threads=os.cpu_count() or 1,
        verbose=False,
    )
    if lora is not None:
        kwargs["lora_path"] = str(lora)
    llm = Llama(**kwargs)
    # `embed` tokenizes its text; the reference's own ids are what is compared.
    llm.tokenize = lambda *args, **kw: list(tokens)
    return np.array(llm.embed("", normalize=True), dtype=np.float64)[None, :]


def compare(name: str, got: np.ndarray, want: np.ndarray) -> dict:
    diff = np.abs(got - want)
    cosine = (got * want).sum(axis=1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1))
    figures = {
        "min_cosine": float(cosine.min()),
        "comparison": name,
        "max_abs_diff": float(diff.max()),
        "rel_max_err": float(diff.max() / np.abs(want).max()),
        "argmax_agree": int((got.argmax(axis=1) == want.argmax(axis=1)).sum()),
        "positions": int(want.shape[0]),
    }
    print(
        f"{name}: max|diff| {figures['max_abs_diff']:.5g}, rel {figures['rel_max_err']:.3g}, "
        f"argmax {figures['argmax_agree']}/{figures['positions']}, min cosine {figures['min_cosine']:.6f}"
    )
    return figures


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--adapter", type=Path, required=True, help="the snapshot's adapters/<skill>/v<N>")
    parser.add_argument("--gguf", type=Path, required=True, help="the skill's base GGUF")
    parser.add_argument("--tolerance", type=float, default=1e-1)
    args = parser.parse_args()

    reference = json.loads((args.adapter / "reference.json").read_text())
    tokens = reference["tokens"]
    lora = args.adapter / "adapter.gguf"
    if "embedding" in reference:
        # An encoder: its sentence embedding, one row (argmax agreement then means the largest
        # component).
        want = np.array(reference["embedding"], dtype=np.float64)[None, :]
        want = want / np.linalg.norm(want)
        adapted = embedding(args.gguf, tokens, lora)
        base = embedding(args.gguf, tokens, None)
    else:
        positions = reference["positions"]
        want = np.array(reference["logits"], dtype=np.float64)
        adapted = logits(args.gguf, tokens, lora)[positions]
        base = logits(args.gguf, tokens, None)[positions]
    with_adapter = compare("llama.cpp + adapter vs agiNet", adapted, want)
    without = compare("llama.cpp base only vs agiNet", base, want)
    moved = float(np.abs(adapted - base).max())
    print(f"the adapter moves llama.cpp's logits by up to {moved:.5g}; max|reference| {np.abs(want).max():.5g}")
    print(json.dumps({
        "llama_cpp_python": llama_cpp_version,
        "skill": reference.get("skill"),
        "adapter_version": reference.get("adapter_version"),
        "tolerance": args.tolerance,
        "adapted": with_adapter,
        "base_only": without,
        "adapter_moves_logits_by": moved,
    }))
    ok = (
        with_adapter["rel_max_err"] <= args.tolerance
        and with_adapter["argmax_agree"] == with_adapter["positions"]
        and without["max_abs_diff"] > with_adapter["max_abs_diff"]
    )
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
