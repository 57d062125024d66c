"""Drives a running `dlm serve` with the official `openai` Python package.

Usage: python openai_client.py BASE_URL   (e.g. http://127.0.0.1:8000)

Checks completions and chat, streamed and not, seeded determinism, the per-step
`diffusion` chunks, and that bad requests come back as 4xx with an OpenAI error object.
Prints one line per check and exits non-zero on the first failure.
"""

import json
import sys
import urllib.error
import urllib.request

import openai

BASE = sys.argv[1].rstrip("/")
client = openai.OpenAI(base_url=BASE + "/v1", api_key="unused", max_retries=0, timeout=120)
MODEL = client.models.list().data[0].id


def check(name, cond, detail=""):
    if not cond:
        print(f"FAIL {name}: {detail}", flush=True)
        sys.exit(1)
    print(f"ok   {name}", flush=True)


# Completions, whole.
c = client.completions.create(model=MODEL, prompt="the capital of france is", max_tokens=6, seed=3)
check("completion has text", isinstance(c.choices[0].text, str) and c.choices[0].finish_reason in ("stop", "length"), c)
check("completion usage", c.usage.completion_tokens == 6 and c.usage.prompt_tokens > 1, c.usage)
again = client.completions.create(model=MODEL, prompt="the capital of france is", max_tokens=6, seed=3)
check("seeded determinism", again.choices[0].text == c.choices[0].text, (c.choices[0].text, again.choices[0].text))

# Several prompts and n, sampled.
multi = client.completions.create(
    model=MODEL, prompt=["one two three", "a b c"], max_tokens=4, n=2, temperature=0.8, seed=1
)
check("prompts x n choices", [ch.index for ch in multi.choices] == [0, 1, 2, 3], multi.choices)

# Completions, streamed: step chunks with empty text and a diffusion field, then the text.
stream = client.completions.create(
    model=MODEL, prompt="the capital of france is", max_tokens=6, seed=3, stream=True, extra_body={"steps": 5}
)
chunks = list(stream)
steps = [ch.model_extra.get("diffusion") for ch in chunks if ch.model_extra.get("diffusion")]
check("one diffusion chunk per step", [s["step"] for s in steps] == [1, 2, 3, 4, 5], steps)
check("step chunks carry no text", all(ch.choices[0].text == "" for ch in chunks if ch.model_extra.get("diffusion")))
check("canvas shows masks", "▢" in steps[0]["canvas"] and steps[0]["masked"] > 0, steps[0])
final = [ch for ch in chunks if ch.choices and ch.choices[0].finish_reason]
check("final chunk has the text", len(final) == 1 and final[0].choices[0].text == "".join(ch.choices[0].text for ch in chunks))
whole5 = client.completions.create(model=MODEL, prompt="the capital of france is", max_tokens=6, seed=3, extra_body={"steps": 5})
check("streamed text equals whole", final[0].choices[0].text == whole5.choices[0].text, (final[0].choices[0].text, whole5.choices[0].text))

# Chat, whole and streamed.
messages = [{"role": "user", "content": "translate to english: guten morgen"}]
chat = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=5, seed=2)
check("chat message", chat.choices[0].message.role == "assistant" and isinstance(chat.choices[0].message.content, str))
content = ""
diffusion_chunks = 0
finish = None
for ch in client.chat.completions.create(model=MODEL, messages=messages, max_tokens=5, seed=2, stream=True):
    if ch.model_extra.get("diffusion"):
        diffusion_chunks += 1
        check_delta = ch.choices[0].delta.content in ("", None)
        if not check_delta:
            check("chat step delta empty", False, ch)
    if ch.choices and ch.choices[0].delta.content:
        content += ch.choices[0].delta.content
    if ch.choices and ch.choices[0].finish_reason:
        finish = ch.choices[0].finish_reason
# Up to 10 steps (the default); a run stops early once nothing is left to change.
check("chat stream steps", 1 <= diffusion_chunks <= 10, diffusion_chunks)
check("chat stream content equals whole", content == chat.choices[0].message.content and finish, (content, chat))

# Extension fields.
llada = client.completions.create(
    model=MODEL, prompt="hello", max_tokens=8, extra_body={"strategy": "llada", "steps": 4, "block_length": 4}
)
check("llada strategy", isinstance(llada.choices[0].text, str))


# Bad requests: 4xx with an OpenAI error object naming the field.
def bad(name, call, status, param):
    try:
        call()
    except openai.APIStatusError as e:
        body = e.response.json()
        err = body.get("error", {})
        check(name, e.status_code == status and err.get("message") and err.get("param") == param, (e.status_code, body))
        return
    check(name, False, "no error")


bad("unknown strategy", lambda: client.completions.create(model=MODEL, prompt="x", extra_body={"strategy": "nope"}), 400, "strategy")
bad("max_tokens out of range", lambda: client.completions.create(model=MODEL, prompt="x", max_tokens=0), 400, "max_tokens")
bad("temperature out of range", lambda: client.completions.create(model=MODEL, prompt="x", temperature=5), 400, "temperature")
bad("wrong type", lambda: client.completions.create(model=MODEL, prompt="x", extra_body={"steps": "ten"}), 400, "steps")
bad("too long for the model", lambda: client.completions.create(model=MODEL, prompt="x", max_tokens=100000), 400, "max_tokens")
bad("chat without messages", lambda: client.chat.completions.create(model=MODEL, messages=[]), 400, "messages")


def raw(body: bytes):
    req = urllib.request.Request(BASE + "/v1/completions", data=body, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


status, body = raw(b'{"prompt": "x", ')
check("malformed JSON", status == 400 and body["error"]["message"], body)
status, body = raw(b'{"prompt": "' + b"a" * (8 << 20) + b'"}')
check("8 MB body refused", status == 413 and body["error"]["message"], status)
print("all checks passed")
