rule dataset:
    output:
        npz=f"{RES}/datasets/{{dataset}}.npz",
    params:
        spec=dataset_spec,
        seed=config["seed"],
    log:
        f"{LOGS}/datasets/{{dataset}}.log",
    benchmark:
        f"{BENCH}/datasets/{{dataset}}.tsv"
    conda:
        "../../envs/landscapes.yaml"
    threads: 1
    resources:
        mem_mb=by_attempt(4000),
        runtime=by_attempt(60),
    script:
        "../../scripts/data/fetch_dataset.py"
