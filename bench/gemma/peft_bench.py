"""PyTorch + PEFT's side of agiNet's Gemma 3 270M benchmark (benches/gemma_train.rs runs it).

transformers loads the GGUF (dequantizing every tensor to float32) into its Gemma 3; PEFT puts
rank-8 LoRA (alpha 16) on every linear layer of the blocks; AdamW trains on a batch of
BATCH x SEQ tokens with the causal-LM loss on every position. `--mode train` times optimizer
steps after a warm-up step; `--mode eval` times forward passes with the loss, without gradients.
Prints `tokens_per_second peak_rss_mib` on its last line; each mode runs in its own process so
the peak RSS is that mode's. With `--device cuda` (scripts/gpu_check.sh) the model trains on the
GPU and a third figure follows: the peak GPU memory PyTorch allocated, in MiB.
"""

import argparse
import resource
import time
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--mode", choices=["train", "eval"], required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    gguf = Path(args.gguf)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, torch_dtype=torch.float32
    )
    model = get_peft_model(
        model,
        LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=TARGETS),
    )
    model = model.to(device)
    ids = torch.randint(300, 200_000, (args.batch, args.seq)).to(device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()
    tokens = args.batch * args.seq

    if args.mode == "train":
        model.train()
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)

        def step() -> None:
            loss = model(input_ids=ids, labels=ids).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(
                [p for p in model.parameters() if p.requires_grad], 1.0
            )
            opt.step()
            opt.zero_grad(set_to_none=True)

        step()
        sync()
        started = time.perf_counter()
        for _ in range(args.steps):
            step()
        sync()
        secs = (time.perf_counter() - started) / args.steps
    else:
        model.eval()
        with torch.no_grad():
            model(input_ids=ids, labels=ids)
            sync()
            started = time.perf_counter()
            for _ in range(args.steps):
                model(input_ids=ids, labels=ids).loss.item()
            secs = (time.perf_counter() - started) / args.steps

    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device.type == "cuda":
        gpu_mib = torch.cuda.max_memory_allocated() / 2**20
        print(f"{tokens / secs:.2f} {peak_mib:.0f} {gpu_mib:.0f}")
    else:
        print(f"{tokens / secs:.2f} {peak_mib:.0f}")


if __name__ == "__main__":
    main()
