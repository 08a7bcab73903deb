"""Run the main job as a script, for `accelerate launch` over several processes or GPUs (papermill runs one process).

    accelerate launch scripts/train.py loss=direct preset=sdxl-paper teacher=weights/sdxl data=data/laion
    ACCELERATE_USE_CPU=true torchrun --standalone --nproc_per_node 2 scripts/train.py loss=cm max_steps=10   # 2 CPU processes

(`accelerate launch --cpu --num_processes 2` starts a single process: use torchrun for several on CPUs.)
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
    from directcms.config import TrainConfig
    from directcms.training import run
    cfg = TrainConfig.from_params(parse(sys.argv[1:]))
    result = run(cfg)
    if result: print(json.dumps(result.get("eval", result), indent=1))
