"""Run the main job as a script, for `accelerate launch` over several processes or GPUs (papermill runs one process).

    accelerate launch scripts/train.py loss=direct preset=sdxl-paper teacher=weights/sdxl data=data/laion
    ACCELERATE_USE_CPU=true torchrun --standalone --nproc_per_node 2 scripts/train.py loss=cm max_steps=10   # 2 CPU processes

(`accelerate launch --cpu --num_processes 2` starts a single process: use torchrun for several on CPUs.)
stop_after=S ends the run after step S's checkpoint (for a job that must fit a time slot); the same command without
it then continues from that checkpoint, with the same result as one uninterrupted run.
Each argument is name=value with the parameters of nbs/train.ipynb; values are read as Python literals when they
parse (10, 1e-4, True, [1, 2, 4]) and as strings otherwise. Every process trains on its own shard of each step's
randomness, and the Direct CM target is computed per process on its own batch.
"""
import ast, json, os, sys
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

def parse(args):
    params = {}
    for a in args:
        if "=" not in a: sys.exit(f"expected name=value, got {a!r}\n\n{__doc__}")
        k, v = a.split("=", 1)
        try: params[k] = ast.literal_eval(v)
        except (ValueError, SyntaxError): params[k] = v
    return params

if __name__ == "__main__":
    from directcms.support.config import TrainConfig
    from directcms.run.training import run
    params = parse(sys.argv[1:])
    stop_after = params.pop("stop_after", None)
    if stop_after is not None and (isinstance(stop_after, bool) or not isinstance(stop_after, int) or stop_after < 1):
        sys.exit(f"stop_after={stop_after!r} is invalid: allowed a positive integer (a training step)")
    cfg = TrainConfig.from_params(params)
    result = run(cfg, stop_after=stop_after)
    if result: print(json.dumps(result.get("eval", result), indent=1))
