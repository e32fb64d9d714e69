# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Model size at a fixed compute budget
#
# The original project's open question: *why does making it larger make
# performance worse?* Here a few depths and widths get the **same training
# compute** (FLOPs, `model.model_cost`: 6 x non-embedding params + attention,
# per token), so a larger model sees fewer tokens, and each size gets its own
# learning rate from a small sweep. The held-out loss is logged during
# training (`train.eval_every`) at the same token counts for every size (the
# largest model's evaluation points, and on for the smaller ones), so each
# run is a curve against tokens seen and against FLOPs spent, and the sizes
# compare at equal tokens as well as at equal compute.

# %% tags=["parameters"]
DATA = "data/m21"
WORKDIR = "runs/ablations/model_size"
# name -> (layers, width, heads)
SIZES = {"2x64": [2, 64, 2], "4x128 (tiny)": [4, 128, 4], "6x192": [6, 192, 6]}
LEARNING_RATES = [1e-3, 3e-3, 1e-2]
BUDGET_TINY_STEPS = 450  # the budget: this many steps of the tiny config's FLOPs (per run)
CURVE_POINTS = 5  # held-out evaluations of the largest model (the smaller ones: at the same tokens, and on)
EVAL_BATCHES = 16
SEQ_LEN = 256
BATCH = 8
SEED = 0

# %%
import json
import logging
import os
import sys

while not os.path.isdir("yoshimidi_jax") and os.getcwd() != "/":
    os.chdir("..")  # the repository root: DATA, WORKDIR and configs/ are relative to it
sys.path.insert(0, os.getcwd())

import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from configs.ablation import get_config
from yoshimidi_jax.model import model_cost
from yoshimidi_jax.train.loop import train
from yoshimidi_jax.train.metrics import read_metrics

logging.getLogger().setLevel(logging.WARNING)
os.makedirs(WORKDIR, exist_ok=True)


def size_config(layers: int, width: int, heads: int, lr: float, steps: int = 1, eval_every: int = 1):
    cfg = get_config(DATA, steps, SEQ_LEN, SEED, {"num_layers": layers, "d_model": width, "num_heads": heads})
    cfg.data.batch_size = BATCH
    cfg.train.lr = lr
    cfg.train.eval_every = eval_every  # a checkpoint only at the end (get_config)
    cfg.train.eval_batches = EVAL_BATCHES
    return cfg


tokens_per_step = BATCH * SEQ_LEN
tiny_flops_per_token = model_cost(get_config(DATA).model, context=SEQ_LEN).flops_per_token
budget = tiny_flops_per_token * tokens_per_step * BUDGET_TINY_STEPS
print(f"budget per run: {budget:.3g} FLOPs ({BUDGET_TINY_STEPS} steps of the tiny config)")

# %% [markdown]
# ## One run per size and learning rate, each with the same FLOPs

# %%
costs = {name: model_cost(size_config(*dims, 1e-3).model, context=SEQ_LEN) for name, dims in SIZES.items()}
steps_of = {name: max(CURVE_POINTS, int(budget // (c.flops_per_token * tokens_per_step))) for name, c in costs.items()}
eval_every = max(1, min(steps_of.values()) // CURVE_POINTS)  # the same token counts for every size
runs = []
for name, (layers, width, heads) in SIZES.items():
    cost, steps = costs[name], steps_of[name]
    for lr in LEARNING_RATES:
        cfg = size_config(layers, width, heads, lr, steps, eval_every)
        workdir = os.path.join(WORKDIR, f"{name.split()[0]}_lr{lr:g}")
        train(cfg, workdir)
        curve = [(row["step"], row["eval/loss"]) for row in read_metrics(os.path.join(workdir, "metrics.jsonl"))
                 if "eval/loss" in row]
        runs.append({"size": name, "lr": lr, "params": cost.params, "non_embedding": cost.nonembedding_params,
                     "flops_per_token": cost.flops_per_token, "steps": steps,
                     "tokens": [s * tokens_per_step for s, _ in curve],
                     "flops": [s * tokens_per_step * cost.flops_per_token for s, _ in curve],
                     "eval_loss": [loss for _, loss in curve]})
        print(f"{name} lr={lr:g}: {steps} steps, held-out loss {curve[-1][1]:.4f}")
with open(os.path.join(WORKDIR, "results.json"), "w") as f:
    json.dump(runs, f, indent=1)

# %% [markdown]
# ## Results

# %%
best = {}
for r in runs:
    if r["size"] not in best or r["eval_loss"][-1] < best[r["size"]]["eval_loss"][-1]:
        best[r["size"]] = r
fig, axes = plt.subplots(1, 3, figsize=(15, 4))
for name, r in best.items():
    label = f"{name}, lr {r['lr']:g}"
    axes[0].plot(r["tokens"], r["eval_loss"], "o-", label=label)
    axes[1].plot(r["flops"], r["eval_loss"], "o-", label=label)
axes[0].set_xlabel("training tokens seen")
axes[1].set_xlabel("training FLOPs")
for ax in axes[:2]:
    ax.set_ylabel("held-out loss (nats/token)")
    ax.set_xscale("log")
    ax.legend(fontsize=8)
axes[0].set_title("Best learning rate per size, against tokens")
axes[1].set_title("... and against compute")
for name in SIZES:
    sweep = [r for r in runs if r["size"] == name]
    axes[2].plot([r["lr"] for r in sweep], [r["eval_loss"][-1] for r in sweep], "o-", label=name)
axes[2].set_xscale("log")
axes[2].set_xlabel("learning rate")
axes[2].set_ylabel("final held-out loss")
axes[2].set_title("Learning-rate sweep at the same budget")
axes[2].legend(fontsize=8)
fig.tight_layout()
plt.show()

# %%
# equal tokens: the last evaluation point every size reached (the largest model's last full one)
common = max(t for t in best[min(best, key=lambda n: best[n]["tokens"][-1])]["tokens"]
             if all(t in r["tokens"] for r in best.values()))
rows = ["| size | params | FLOPs/token | steps in the budget | best lr | final held-out loss (equal compute) | "
        f"held-out loss at {common:,} tokens (equal tokens) |", "|---|---|---|---|---|---|---|"]
for name, r in best.items():
    rows.append(f"| {name} | {r['params']:,} | {r['flops_per_token']:.3g} | {r['steps']} | {r['lr']:g} | "
                f"{r['eval_loss'][-1]:.4f} | {r['eval_loss'][r['tokens'].index(common)]:.4f} |")
display(Markdown("\n".join(rows)))

# %%
order = sorted(best, key=lambda n: best[n]["params"])
finals = [best[n]["eval_loss"][-1] for n in order]
equal = [best[n]["eval_loss"][best[n]["tokens"].index(common)] for n in order]
print("at equal compute, small to large: " + ", ".join(f"{n} {f:.4f}" for n, f in zip(order, finals)))
print(f"at equal tokens ({common:,}), small to large: " + ", ".join(f"{n} {f:.4f}" for n, f in zip(order, equal)))
print("at this budget the best size is", min(best, key=lambda n: best[n]["eval_loss"][-1]),
      "; the best learning rate per size:", {n: best[n]["lr"] for n in order})

# %% [markdown]
# ## Finding
#
# Full-scale run above: a budget of 6.4e12 training FLOPs per run (450 steps
# of the tiny config), batches of 8 x 256 tokens of the embedded corpus
# (1.32 M training tokens), 2 CPU cores. **At a fixed compute budget the
# smallest model wins**: 2x64 reaches 2.05 nats/token, the tiny 4x128 2.39
# and 6x192 3.33, each at its best learning rate (3e-3 for all three, inside
# the sweep: a mistuned rate is not the cause). **Per token seen the sizes
# are close** (at 307,200 tokens: 3.29, 3.15, 3.35): a larger model is not a
# worse learner, it is an undertrained one. For the same FLOPs it sees 5-15x
# fewer tokens (2x64: 3.6 epochs; 6x192: a quarter of one), and in this early
# part of training tokens buy more than parameters. Chinchilla's rule of
# thumb (about 20 tokens per parameter, C = 6ND) puts the best size for this
# budget near 0.23 M parameters, close to the 2x64's 0.20 M. So "larger is
# worse" is what a fixed, small budget does; a larger model needs
# proportionally more compute and data (the Lakh corpus) to pay off.
