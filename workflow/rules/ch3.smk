# Chapter 3, Sec. 3.4.2: the flatness measure's invariance on synthetic data
# (Tables 3.1-3.3, Figure 3.1, and the Euclidean-vs-Riemannian extension).


rule table_3_1:
    output:
        **table_outputs(table_3_1="table_3_1"),
    log:
        f"{LOGS}/ch3/table_3_1.log",
    benchmark:
        f"{BENCH}/ch3/table_3_1.tsv"
    conda:
        "../../envs/landscapes.yaml"
    threads: 1
    script:
        "../../scripts/ch3_architectures.py"


rule ch3_invariance_tables:
    output:
        **table_outputs(
            table_3_2="table_3_2",
            table_3_3="table_3_3",
            euclidean_vs_riemannian="table_3_euclidean_vs_riemannian",
        ),
    params:
        cfg=ch3_invariance_params(),
    log:
        f"{LOGS}/ch3/invariance_tables.log",
    benchmark:
        f"{BENCH}/ch3/invariance_tables.tsv"
    conda:
        "../../envs/landscapes.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=by_attempt(4000),
        runtime=by_attempt(240),
    script:
        "../../scripts/ch3_invariance_tables.py"


rule figure_3_1:
    output:
        figure_3_1=figure("figure_3_1"),
        curves=f"{RES}/ch3/invariance/figure_3_1_curves.csv",
    params:
        cfg=ch3_invariance_params(),
    log:
        f"{LOGS}/ch3/figure_3_1.log",
    benchmark:
        f"{BENCH}/ch3/figure_3_1.tsv"
    conda:
        "../../envs/landscapes.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=by_attempt(4000),
        runtime=by_attempt(120),
    script:
        "../../scripts/ch3_power_convergence.py"
