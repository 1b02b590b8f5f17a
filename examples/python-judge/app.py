"""A judge plugin written in Python: the advgame:plugin@0.1.0 contract is language-neutral.

Self-consistency LLM judge: every item is rendered through its named rubric (the host's
rubric registry), the judge model answers `samples` times per item (different sampling
seeds, all in ONE host.generate batch), each answer is parsed by the same rubric, and the
scores are averaged over the answers that parsed. An item fails only when no answer parsed.

Settings (host.config): samples (default 3), temperature (0.7), max-tokens (64), seed (0).

Build: ./build.sh OUT.wasm (componentize-py; the component imports a deny-all WASI).
"""

from typing import List

import wit_world
from componentize_py_types import Err, Ok, Result
from wit_world.exports import judge
from wit_world.imports import host, rubric_registry, types


def _settings():
    config = dict(host.config())
    return (
        max(1, int(config.get("samples", "3"))),
        float(config.get("temperature", "0.7")),
        int(config.get("max-tokens", "64")),
        int(config.get("seed", "0")),
    )


def _run(prompts, parse):
    """prompts: list of Chat-or-Failure; parse(i, text) -> score or raises Err."""
    samples, temperature, max_tokens, seed = _settings()
    requests, owners = [], []
    for i, p in enumerate(prompts):
        if not isinstance(p, Err):
            for _ in range(samples):
                requests.append(p)
                owners.append(i)
    outputs = []
    if requests:
        # One batch; the sampling seed varies the answers between samples of one item.
        params = host.Sampling(
            max_tokens=max_tokens, temperature=temperature, top_p=0.95, seed=seed, stop=[]
        )
        outputs = host.generate(requests, params)
    collected = [[] for _ in prompts]
    last_error = [None for _ in prompts]
    for owner, out in zip(owners, outputs):
        if isinstance(out, Err):
            last_error[owner] = types.Failure_Host(f"generate: {out.value}")
            continue
        try:
            collected[owner].append(parse(owner, out.value))
        except Err as e:
            last_error[owner] = e.value
    results = []
    for i, p in enumerate(prompts):
        if isinstance(p, Err):
            results.append(p)
        elif collected[i]:
            results.append(Ok(collected[i]))
        else:
            results.append(Err(last_error[i] or types.Failure_Host("no output")))
    return results


def _prompt(f, *args):
    try:
        return f(*args)
    except Err as e:
        return e


class Judge(wit_world.exports.Judge):
    def info(self) -> types.PluginInfo:
        return types.PluginInfo(
            name="python-self-consistency",
            version="0.1.0",
            description="example Python judge: rubric prompts, several samples, mean score",
        )

    def compare(self, batch: List[judge.Comparison]) -> List[Result[judge.ScoredPair, types.Failure]]:
        prompts = [_prompt(rubric_registry.pairwise_prompt, c.rubric, c.context, c.a, c.b) for c in batch]
        runs = _run(prompts, lambda i, text: rubric_registry.parse_pairwise(batch[i].rubric, text))
        out = []
        for r in runs:
            if isinstance(r, Err):
                out.append(r)
            else:
                n = len(r.value)
                a = sum(s[0] for s in r.value) / n
                b = sum(s[1] for s in r.value) / n
                out.append(Ok(judge.ScoredPair(a=a, b=b, rationale=f"mean of {n} samples")))
        return out

    def assess(self, batch: List[judge.Assessment]) -> List[Result[float, types.Failure]]:
        prompts = [_prompt(rubric_registry.pointwise_prompt, x.rubric, x.context, x.response) for x in batch]
        runs = _run(prompts, lambda i, text: rubric_registry.parse_pointwise(batch[i].rubric, text))
        return [r if isinstance(r, Err) else Ok(sum(r.value) / len(r.value)) for r in runs]
