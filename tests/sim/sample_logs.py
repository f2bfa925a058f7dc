#!/usr/bin/env python3
"""Generate realistic tool-calling chat-completion log records for the flywheel's log index.

The upstream demo loads `aiva_primary_assistant_dataset.jsonl` (production logs of NVIDIA's AI
Virtual Assistant, whose primary assistant routes each customer message to a specialised agent
through a tool call). That file is not available here, so this writes records of the same shape:
a system prompt, a customer message, the routing tools, and the model's tool call with JSON
arguments. Deterministic for a seed; user queries are unique within a file (the flywheel drops
records whose user messages repeat).

    python tests/sim/sample_logs.py --records 1000 --output aiva.jsonl \
        [--workload-id primary_assistant] [--client-id aiva-1] [--seed 7]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

MODEL = "meta/llama-3.1-70b-instruct"
SYSTEM = (
    "You are the primary assistant of an electronics retailer's customer service. Understand the "
    "customer's request and hand it to the right specialised assistant by calling exactly one tool. "
    "Do not answer product, order or return questions yourself."
)
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "ToProductQAAssistant",
            "description": "Questions about a product: specifications, compatibility, availability, manuals.",
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string", "description": "the customer's question, self-contained"}},
                "required": ["query"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "ToOrderStatusAssistant",
            "description": "Where an order is, when it arrives, what it contained.",
            "parameters": {
                "type": "object",
                "properties": {
                    "order_id": {"type": "integer", "description": "the order number, if the customer gave one"},
                    "query": {"type": "string"},
                },
                "required": ["query"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "ToReturnProcessing",
            "description": "Start or follow a return, refund or exchange.",
            "parameters": {
                "type": "object",
                "properties": {
                    "order_id": {"type": "integer"},
                    "product_name": {"type": "string"},
                    "reason": {"type": "string"},
                },
                "required": ["reason"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "HandleOtherTalk",
            "description": "Greetings, thanks, and anything unrelated to products, orders or returns.",
            "parameters": {"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]},
        },
    },
]
PRODUCTS = [
    "RTX 4090 Founders Edition",
    "RTX 4070 SUPER",
    "Jetson Orin Nano developer kit",
    "SHIELD TV Pro",
    "GeForce NOW membership card",
    "RTX 4060 Ti 16GB",
    "Jetson AGX Orin 64GB",
    "RTX 3080 Ti",
    "SHIELD remote",
    "DGX Spark",
]
PRODUCT_QUESTIONS = [
    "Does the {p} support {f}?",
    "What power supply do I need for the {p}?",
    "Is the {p} compatible with {f}?",
    "How long is the {p} and will it fit a mid-tower case?",
    "Can I use the {p} for {f}?",
    "Where can I download the manual for the {p}?",
    "Is the {p} back in stock?",
    "What is the difference between the {p} and the {q}?",
]
FEATURES = ["DisplayPort 2.1", "AV1 encoding", "a 1000W PSU", "Linux", "dual monitors", "8K output", "HDMI 2.1", "VR"]
ORDER_QUESTIONS = [
    "Where is my order {o}?",
    "My order {o} still says processing, when will it ship?",
    "Can you tell me what was in order {o}?",
    "Has order {o} been delivered? The tracking page is blank.",
    "I ordered the {p} last week (order {o}), when does it arrive?",
]
RETURN_QUESTIONS = [
    "I want to return the {p} from order {o}, it {r}.",
    "How do I get a refund for order {o}? The {p} {r}.",
    "Can I exchange the {p} I bought in order {o}? It {r}.",
    "What is the status of my return for order {o}?",
]
REASONS = ["arrived damaged", "does not fit my case", "was the wrong model", "makes a loud noise", "stopped working"]
OTHER = [
    "Hi there!",
    "Thanks, that was helpful.",
    "What's the weather like in {c} today?",
    "Can you recommend a good movie?",
    "Who won the game last night in {c}?",
    "Good morning, how are you?",
]
CITIES = ["Santa Clara", "Austin", "Berlin", "Tel Aviv", "Bangalore", "Taipei", "Toronto", "Paris"]


def _user_turn(rng: random.Random) -> tuple[str, str, dict]:
    """(user message, tool name, tool arguments)."""
    kind = rng.choices(["product", "order", "return", "other"], weights=[4, 3, 2, 1])[0]
    product, other_product = rng.sample(PRODUCTS, 2)
    order = rng.randint(10000, 99999)
    if kind == "product":
        text = rng.choice(PRODUCT_QUESTIONS).format(p=product, q=other_product, f=rng.choice(FEATURES))
        return text, "ToProductQAAssistant", {"query": text}
    if kind == "order":
        text = rng.choice(ORDER_QUESTIONS).format(o=order, p=product)
        return text, "ToOrderStatusAssistant", {"order_id": order, "query": text}
    if kind == "return":
        reason = rng.choice(REASONS)
        text = rng.choice(RETURN_QUESTIONS).format(o=order, p=product, r=reason)
        args = {"order_id": order, "reason": reason}
        if "{p}" in text or product in text:
            args["product_name"] = product
        return text, "ToReturnProcessing", args
    text = rng.choice(OTHER).format(c=rng.choice(CITIES))
    return text, "HandleOtherTalk", {"message": text}


def generate(
    count: int,
    workload_id: str = "primary_assistant",
    client_id: str = "aiva-1",
    seed: int = 7,
    start: int = 1_735_689_600,  # 2025-01-01T00:00:00Z
):
    """Yield `count` log records (dicts with the index's five top-level fields)."""
    rng = random.Random(seed)
    seen: set[str] = set()
    timestamp = start
    made = 0
    while made < count:
        text, tool, args = _user_turn(rng)
        if text in seen:  # repeated wording: make it unique the way real traffic is (more context)
            text = f"{text} (ticket {rng.randint(100000, 999999)})"
            if "query" in args:
                args["query"] = text
            if "message" in args:
                args["message"] = text
            if text in seen:
                continue
        seen.add(text)
        timestamp += rng.randint(5, 600)
        made += 1
        prompt_tokens = 180 + len(text.split())
        completion_tokens = 12 + 3 * len(args)
        call_id = f"chatcmpl-tool-{rng.getrandbits(64):016x}"
        yield {
            "workload_id": workload_id,
            "client_id": client_id,
            "timestamp": timestamp,
            "request": {
                "model": MODEL,
                "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}],
                "tools": TOOLS,
                "tool_choice": "auto",
                "temperature": 0.2,
                "max_tokens": 1024,
            },
            "response": {
                "id": f"chatcmpl-{rng.getrandbits(64):016x}",
                "object": "chat.completion",
                "created": timestamp,
                "model": MODEL,
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": None,
                            "tool_calls": [
                                {
                                    "id": call_id,
                                    "type": "function",
                                    "function": {"name": tool, "arguments": json.dumps(args)},
                                }
                            ],
                        },
                        "finish_reason": "tool_calls",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            },
        }


def write(path: Path, count: int, **kw) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as out:
        for record in generate(count, **kw):
            out.write(json.dumps(record, separators=(",", ":")) + "\n")
    tmp.replace(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--workload-id", default="primary_assistant")
    parser.add_argument("--client-id", default="aiva-1")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--output", "-o", help="JSONL file to write (default: standard output)")
    args = parser.parse_args()
    kw = {"workload_id": args.workload_id, "client_id": args.client_id, "seed": args.seed}
    if args.output:
        write(Path(args.output), args.records, **kw)
        print(f"wrote {args.records} records to {args.output}", file=sys.stderr)
    else:
        for record in generate(args.records, **kw):
            sys.stdout.write(json.dumps(record, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
