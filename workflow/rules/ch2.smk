# Chapter 2, Sec. 2.6: the tied-weight ReLU autoencoder's landscape around A*
# (Tables 2.1 and 2.2, Figures 2.1 and 2.2, and the support-recovery extension).
# One thread each: these are many small dense products, and on a shared 2-core
# machine a second thread made them 4-10x slower (measured).


include: "ch2_helpers.smk"


rule table_2_1:
    output:
        **table_outputs(
            table="table_2_1",
            support="table_2_support_recovery",
            readings="table_2_1_bias_readings",
            summary="table_2_1_bias_summary",
            closest="table_2_1_closest_reading",
            coherence="table_2_coherence",
        ),
    params:
        cfg=ch2_params("table_2_1"),
    log:
        f"{LOGS}/ch2/table_2_1.log",
    benchmark:
        f"{BENCH}/ch2/table_2_1.tsv"
    conda:
        "../../envs/flatscape.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=by_attempt(6000),
        runtime=by_attempt(60),
    script:
        "../../scripts/ch2/table_2_1.py"


rule table_2_2:
    output:
        **table_outputs(table="table_2_2"),
    params:
        cfg=ch2_params("table_2_2"),
    log:
        f"{LOGS}/ch2/table_2_2.log",
    benchmark:
        f"{BENCH}/ch2/table_2_2.tsv"
    conda:
        "../../envs/flatscape.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=by_attempt(6000),
        runtime=by_attempt(60),
    script:
        "../../scripts/ch2/table_2_2.py"


rule figure_2_1:
    output:
        figure=figure("figure_2_1"),
        **table_outputs(profiles="figure_2_1_profiles"),
    params:
        cfg=ch2_params("figure_2_1"),
    log:
        f"{LOGS}/ch2/figure_2_1.log",
    benchmark:
        f"{BENCH}/ch2/figure_2_1.tsv"
    conda:
        "../../envs/flatscape.yaml"
    threads: 1
    resources:
        mem_mb=by_attempt(6000),
        runtime=by_attempt(30),
    script:
        "../../scripts/ch2/figure_2_1.py"


rule figure_2_2:
    output:
        figure=figure("figure_2_2"),
        **table_outputs(profiles="figure_2_2_profiles"),
    params:
        cfg=ch2_params("figure_2_2"),
    log:
        f"{LOGS}/ch2/figure_2_2.log",
    benchmark:
        f"{BENCH}/ch2/figure_2_2.tsv"
    conda:
        "../../envs/flatscape.yaml"
    threads: 1
    resources:
        mem_mb=by_attempt(6000),
        runtime=by_attempt(30),
    script:
        "../../scripts/ch2/figure_2_2.py"
