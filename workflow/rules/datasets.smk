# Data: staging (the `data` target) and one standardised .npz per data set.
#
# Staging is the only place that touches the network or a mirror: `stage_dataset` fetches
# (download) or unpacks (mirror) a data set under data.root, verifies its checksums and
# writes a manifest of the files it verified. It is a local rule: under the SLURM profile
# it runs on the submit host (the login node, which has internet), never on a compute
# node. Every other job only reads staged files, checked against the manifest; one that
# finds them missing fails at once, naming the `data` target. Stage first, then submit:
#
#   snakemake --cores 1 data --configfile config/paper.yaml


localrules:
    stage_dataset,
    data,


rule stage_dataset:
    output:
        manifest=staged_file("{dataset}"),
    params:
        spec=dataset_spec,
    log:
        f"{LOGS}/datasets/stage_{{dataset}}.log",
    benchmark:
        f"{BENCH}/datasets/stage_{{dataset}}.tsv"
    conda:
        "../../envs/flatscape.yaml"
    threads: 1
    script:
        "../../scripts/data/stage_dataset.py"


rule data:
    input:
        staged_outputs(),


rule dataset:
    input:
        unpack(dataset_inputs),
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
        "../../envs/flatscape.yaml"
    threads: 1
    resources:
        mem_mb=by_attempt(4000),
        runtime=by_attempt(60),
    script:
        "../../scripts/data/fetch_dataset.py"
