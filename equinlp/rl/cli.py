"""``equinlp rl run | report``."""

from __future__ import annotations

import argparse

from equinlp.rl.envs import ENVS
from equinlp.rl.qnet import METHODS, RL_PROXIES

EXAMPLES = """examples:
  equinlp rl run --env cartpole --method equizero --seeds 0 --out results/rl
  equinlp rl run --env cartpole gridworld --seeds 0 1 2 3 4 --out results/rl   # the README's figure
  equinlp rl report results/rl
"""

QUICK = {"pretrain_steps": 2_000, "steps": 3_000}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="rl_command", required=True)
    run = sub.add_parser(
        "run",
        help="pre-train a plain DQN per seed, continue it as each method, write one JSON per run (resumable)",
        description="The paper's protocol: per seed, a plain DQN is pre-trained once; each method then continues "
        "from those weights (fresh replay buffer, ε = --eps-end). Runs already in OUT/runs are skipped; an "
        "interrupted run resumes from OUT/checkpoints. Curves are greedy evaluation returns on fixed seeds.",
    )
    run.add_argument("--env", nargs="+", default=["cartpole"], choices=list(ENVS), help="environments")
    run.add_argument("--method", "--methods", dest="methods", nargs="+", default=list(METHODS), choices=METHODS)
    run.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4], help="seeds (the paper's protocol: 5)")
    run.add_argument("--pretrain-steps", type=int, default=None, help="plain-DQN steps (default: per environment)")
    run.add_argument("--steps", type=int, default=None, help="steps of continued training (default: per environment)")
    run.add_argument("--proxy", default="max_q", choices=list(RL_PROXIES), help="equizero's proxy (max_q: largest max Q)")
    run.add_argument("--lr", type=float, default=5e-4, help="Adam learning rate")
    run.add_argument("--eps-end", type=float, default=0.05, help="final exploration rate (and the rate after pre-training)")
    run.add_argument("--eval-every", type=int, default=1_000, help="steps between greedy evaluations")
    run.add_argument("--eval-episodes", type=int, default=5, help="episodes per evaluation")
    run.add_argument("--threads", type=int, default=1, help="torch CPU threads (small networks: 1 is fastest)")
    run.add_argument("--quick", action="store_true", help=f"short schedules for a first look: {QUICK}")
    run.add_argument("--out", default="results/rl", help="output folder (kept and continued on rerun)")
    report = sub.add_parser("report", help="print the returns table and save learning curves with 95%% bands")
    report.add_argument("results", help="a results folder")
    report.add_argument("--plot", default=None, help="where to save the plot (default RESULTS/rl.png)")


def run_command(args: argparse.Namespace) -> int:
    from equinlp.rl.report import print_report

    if args.rl_command == "report":
        print_report(args.results, args.plot)
        return 0
    import torch

    from equinlp.rl.dqn import DQNConfig
    from equinlp.rl.run import RLConfig, run

    torch.set_num_threads(args.threads)
    steps = QUICK if args.quick else {"pretrain_steps": args.pretrain_steps, "steps": args.steps}
    dqn = DQNConfig(lr=args.lr, eps_end=args.eps_end, eval_every=args.eval_every, eval_episodes=args.eval_episodes)
    for env in dict.fromkeys(args.env):
        config = RLConfig(env, tuple(args.methods), tuple(args.seeds), proxy=args.proxy, out=args.out, dqn=dqn, **steps)
        run(config)
    print_report(args.out)
    return 0
