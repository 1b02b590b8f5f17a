"""Talks to an `advgame-host serve` endpoint with the official `openai` Python package and
checks what a user of that package relies on: chat, streaming, `n`, the vLLM prefill extra,
completions, and typed errors. Exits non-zero with a message on the first mismatch.

Usage: openai_client_check.py BASE_URL MODEL   (BASE_URL like http://127.0.0.1:8011/v1)
"""

import sys

import openai


def check(cond, message):
    if not cond:
        print(f"FAILED: {message}", file=sys.stderr)
        sys.exit(1)


def main():
    base_url, model = sys.argv[1], sys.argv[2]
    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=120)

    models = client.models.list()
    check([m.id for m in models.data] == [model], f"models.list: {models}")

    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi."}]
    chat = client.chat.completions.create(
        model=model, messages=messages, max_tokens=6, temperature=0, n=2, seed=1
    )
    check(len(chat.choices) == 2, f"n=2 gave {len(chat.choices)} choices")
    check([c.index for c in chat.choices] == [0, 1], "choice indices")
    check(chat.choices[0].message.content == chat.choices[1].message.content, "greedy choices differ")
    check(chat.choices[0].finish_reason in ("stop", "length"), "finish_reason")
    check(chat.usage.completion_tokens >= 1 and chat.usage.prompt_tokens >= 1, f"usage {chat.usage}")
    check(chat.usage.total_tokens == chat.usage.prompt_tokens + chat.usage.completion_tokens, "total")

    stream = client.chat.completions.create(
        model=model,
        messages=messages,
        max_tokens=6,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, finish, usage = "", None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            text += c.delta.content or ""
            finish = c.finish_reason or finish
    check(text == chat.choices[0].message.content, f"streamed {text!r} != {chat.choices[0].message.content!r}")
    check(finish in ("stop", "length"), "streamed finish_reason")
    check(usage is not None and usage.completion_tokens == chat.usage.completion_tokens // 2, f"stream usage {usage}")

    prefill = client.chat.completions.create(
        model=model,
        messages=messages + [{"role": "assistant", "content": "Hello"}],
        max_tokens=4,
        temperature=0,
        extra_body={"continue_final_message": True, "add_generation_prompt": False},
    )
    check(prefill.choices[0].message.content is not None, "prefill answer")

    completion = client.completions.create(model=model, prompt="Once upon a time", max_tokens=4, temperature=0)
    check(len(completion.choices) == 1 and completion.usage.completion_tokens >= 1, f"completions {completion}")

    try:
        client.chat.completions.create(model="no-such-model", messages=messages, max_tokens=2)
        check(False, "an unknown model was accepted")
    except openai.NotFoundError as e:
        check(e.status_code == 404, "unknown model status")
    try:
        client.chat.completions.create(model=model, messages=messages, max_tokens=2, temperature=5)
        check(False, "temperature 5 was accepted")
    except openai.BadRequestError as e:
        check(e.body.get("param") == "temperature", f"error body {e.body}")
    try:
        client.chat.completions.create(model=model, messages=[], max_tokens=2)
        check(False, "empty messages were accepted")
    except openai.BadRequestError as e:
        check(e.body.get("param") == "messages", f"error body {e.body}")
    print("openai client: all checks passed")


if __name__ == "__main__":
    main()
