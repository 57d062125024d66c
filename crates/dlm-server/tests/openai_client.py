"""Drives a running `dlm serve` with the official `openai` Python package.

Usage: python openai_client.py BASE_URL [API_KEY]   (e.g. http://127.0.0.1:8000)

Checks completions and chat, streamed and not, seeded determinism, the per-step
`diffusion` chunks, `stop`, `logprobs`, token-id prompts, prompt scoring (`echo` with
`logprobs`, as lm-evaluation-harness sends it), and that bad requests come back as 4xx
with an OpenAI error object. With API_KEY (the server started with --api-key), also that
no key or a wrong one is refused with 401 without echoing it. Prints one line per check
and exits non-zero on the first failure.
"""

import json
import sys
import urllib.error
import urllib.request

import openai

BASE = sys.argv[1].rstrip("/")
KEY = sys.argv[2] if len(sys.argv) > 2 else None
client = openai.OpenAI(base_url=BASE + "/v1", api_key=KEY or "unused", max_retries=0, timeout=120)
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


def raw(body: bytes, key=KEY):
    headers = {"content-type": "application/json"}
    if key:
        headers["authorization"] = "Bearer " + key
    req = urllib.request.Request(BASE + "/v1/completions", data=body, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


status, body = raw(b'{"prompt": "x", ')
check("malformed JSON", status == 400 and body["error"]["message"], body)
status, body = raw(b'{"prompt": "' + b"a" * (8 << 20) + b'"}')
check("8 MB body refused", status == 413 and body["error"]["message"], status)

# stop: the text ends before the first stop sequence, finish_reason "stop".
base = client.completions.create(model=MODEL, prompt="the capital of france is", max_tokens=12, seed=2)
words = base.choices[0].text.split()
if len(words) >= 3:
    cut = client.completions.create(model=MODEL, prompt="the capital of france is", max_tokens=12, seed=2, stop=["zzz", words[2]])
    want = base.choices[0].text[: base.choices[0].text.find(words[2])]
    check("stop cuts the text", cut.choices[0].text == want and cut.choices[0].finish_reason == "stop", (cut.choices[0], want))
bad("five stop sequences", lambda: client.completions.create(model=MODEL, prompt="x", stop=["a", "b", "c", "d", "e"]), 400, "stop")

# logprobs: completions and chat shapes.
lp = client.completions.create(model=MODEL, prompt="the capital of france is", max_tokens=6, seed=3, logprobs=2).choices[0].logprobs
check(
    "completion logprobs",
    len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) == 6
    and all(v <= 0 for v in lp.token_logprobs)
    and all(1 <= len(t) <= 3 for t in lp.top_logprobs),
    lp,
)
chat_lp = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=4, seed=2, logprobs=True, top_logprobs=2)
content = chat_lp.choices[0].logprobs.content
check(
    "chat logprobs",
    len(content) == 4 and all(len(c.top_logprobs) == 2 and c.bytes == list(c.token.encode()) for c in content),
    content,
)

# Token-id prompts: the same text as the string prompt (ids from the server's tokenizer,
# without special tokens, as a client-side HF tokenizer gives them).
def tokenize(text):
    req = urllib.request.Request(
        BASE + "/tokenize",
        data=json.dumps({"prompt": text, "add_special_tokens": False}).encode(),
        headers={"content-type": "application/json", **({"authorization": "Bearer " + KEY} if KEY else {})},
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())["tokens"]


ids = tokenize("the capital of france is")
by_ids = client.completions.create(model=MODEL, prompt=[ids], max_tokens=6, seed=3)
check("token-id prompt", by_ids.choices[0].text == c.choices[0].text, (by_ids.choices[0].text, c.choices[0].text))

# Scoring as lm-evaluation-harness 0.4.13's local-completions asks for it.
ctx, cont = tokenize("question: what is the capital of france? answer:"), tokenize("paris")
scored = client.completions.create(
    model=MODEL, prompt=[ctx + cont], temperature=0, max_tokens=1, logprobs=1, seed=1234, echo=True
).choices[0]
values = scored.logprobs.token_logprobs
check("one term per prompt token (then the generated one)", len(values) == len(ctx) + len(cont) + 1 and values[0] is None, values)
continuation = values[len(ctx) : -1]
tops = scored.logprobs.top_logprobs[len(ctx) : -1]
check("continuation terms are finite", all(isinstance(v, float) and v <= 0 for v in continuation) and all(len(t) >= 1 for t in tops))
is_greedy = all(v == max(t.values()) for v, t in zip(continuation, tops))
print(f"     loglikelihood {sum(continuation):.3f}, is_greedy {is_greedy}")
again = client.completions.create(
    model=MODEL, prompt=[ctx + cont], temperature=0, max_tokens=1, logprobs=1, seed=1234, echo=True
).choices[0]
check("scoring is deterministic for a seed", again.logprobs.token_logprobs == values)

if KEY:
    wrong = "sk-wrong-5c0ffee"
    try:
        openai.OpenAI(base_url=BASE + "/v1", api_key=wrong, max_retries=0).completions.create(model=MODEL, prompt="x", max_tokens=1)
        check("wrong key refused", False, "no error")
    except openai.AuthenticationError as e:
        err = e.response.json()["error"]
        check("wrong key refused with 401", e.status_code == 401 and err["code"] == "invalid_api_key" and err["type"] == "invalid_request_error", err)
        check("wrong key not echoed", wrong not in e.response.text and KEY not in e.response.text, e.response.text)
    status, body = raw(b'{"prompt": "x", "max_tokens": 1}', key=None)
    check("no key refused with 401", status == 401 and body["error"]["code"] == "invalid_api_key", body)
    with urllib.request.urlopen(BASE + "/health", timeout=30) as r:
        check("/health needs no key", r.status == 200)
print("all checks passed")
