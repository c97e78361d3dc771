"""Speed of the local models on this machine: load time, prompt processing and generation.

A script, not a test: ``python bench/local_model_bench.py [--repeats N] [--max-tokens N]``.
Prompt processing and generation rates come from llama.cpp's own counters (so sampling and
Python overhead are excluded); "call" is the wall-clock of one LocalProvider.complete.
"""

from __future__ import annotations

import argparse
import statistics
import time

import llama_cpp

from orchestrator.records import Message
from orchestrator.settings import Settings
from providers.local import LocalProvider, cpu_has_amx, load_local_model
from providers.model_files import local_model_names, resolve_model_file

# About 400 tokens of fixed text for prompt processing; a fixed chat request for generation.
PROMPT_TEXT = (
    "def merge_intervals(intervals):\n"
    '    """Merge overlapping closed intervals given as (start, end) pairs and return them sorted."""\n'
) * 12
GENERATION_REQUEST = "Write a Python function that checks whether a string is a palindrome, with a docstring."


def perf(llama: llama_cpp.Llama) -> llama_cpp.llama_perf_context_data:
    return llama_cpp.llama_perf_context(llama.ctx)


def bench_model(name: str, settings: Settings, repeats: int, max_tokens: int) -> dict[str, float]:
    started = time.perf_counter()
    resolve_model_file(name, settings)  # sha256 check (and, the first time ever, the assembly)
    resolve_s = time.perf_counter() - started
    loaded = load_local_model(name, settings)
    llama = loaded.llama
    provider = LocalProvider(settings)

    prompt_rates, gen_rates, calls, gen_tokens = [], [], [], []
    for _ in range(repeats):
        llama.reset()  # no prefix reuse: every run evaluates the whole prompt
        llama_cpp.llama_perf_context_reset(llama.ctx)
        llama.create_completion(PROMPT_TEXT, max_tokens=1, temperature=0.0)
        counters = perf(llama)
        prompt_rates.append(counters.n_p_eval / (counters.t_p_eval_ms / 1000))

        llama.reset()
        llama_cpp.llama_perf_context_reset(llama.ctx)
        began = time.perf_counter()
        reply = provider.complete(
            [Message(role="user", content=GENERATION_REQUEST)], name, max_tokens=max_tokens
        )
        calls.append(time.perf_counter() - began)
        counters = perf(llama)
        gen_rates.append(counters.n_eval / (counters.t_eval_ms / 1000))
        gen_tokens.append(reply.completion_tokens)
    return {
        "resolve_s": resolve_s,
        "load_s": loaded.load_s,
        "prompt_tokens": float(len(llama.tokenize(PROMPT_TEXT.encode()))),
        "prompt_tok_s": statistics.median(prompt_rates),
        "gen_tok_s": statistics.median(gen_rates),
        "gen_tokens": statistics.median(gen_tokens),
        "call_s": statistics.median(calls),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=128)
    args = parser.parse_args()
    settings = Settings()
    print(
        f"llama-cpp-python {llama_cpp.__version__}, n_threads={settings.local_threads}, "
        f"n_ctx={settings.local_context}, AMX host (plain CPU buffers): {cpu_has_amx()}"
    )
    header = f"{'model':<22}{'resolve s':>10}{'load s':>8}{'prompt tok/s':>14}{'gen tok/s':>11}{'call s':>8}"
    print(header)
    for name in local_model_names():
        r = bench_model(name, settings, args.repeats, args.max_tokens)
        print(
            f"{name:<22}{r['resolve_s']:>10.2f}{r['load_s']:>8.2f}{r['prompt_tok_s']:>14.0f}"
            f"{r['gen_tok_s']:>11.1f}{r['call_s']:>8.2f}"
            f"   ({r['prompt_tokens']:.0f}-token prompt, {r['gen_tokens']:.0f} tokens generated)"
        )


if __name__ == "__main__":
    main()
