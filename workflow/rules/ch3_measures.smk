# Beyond the thesis: the scale-invariant measure against the field's other flatness and
# generalization measures (relative flatness, adaptive sharpness, PAC-Bayes flatness, the
# Fisher-Rao norm, the Riemannian trace) on the same Sec. 3.5 minima, ranked by Kendall tau
# and Jiang et al.'s granulated tau with the generalization gap (ch3.minima.measures).
#   snakemake --cores 2 table_measures [--configfile config/<preset>.yaml]


include: "ch3_measures_helpers.smk"


rule measure_generalization:
    input:
        model=f"{MINIMA_DIR}/{{row}}/{{batch}}_seed{{seed}}.pt",
        data=minima_row_dataset,
    output:
        json=f"{MINIMA_DIR}/{{row}}/{{batch}}_seed{{seed}}_measures.json",
    params:
        cfg=minima_generalization_params,
    log:
        f"{LOGS}/ch3/minima/measures_{{row}}_{{batch}}_seed{{seed}}.log",
    benchmark:
        f"{BENCH}/ch3/minima/measures_{{row}}_{{batch}}_seed{{seed}}.tsv"
    conda:
        "../../envs/flatscape.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=by_attempt(8000),
        runtime=by_attempt(240),
    script:
        "../../scripts/ch3/measure_generalization.py"


rule table_measures:
    input:
        metrics=minima_runs("metrics"),
        flatness=minima_runs("flatness"),
        measures=minima_measures_runs(),
    output:
        **table_outputs(ranking="table_3_measures", runs="table_3_measures_runs"),
        figure=figure("figure_3_measures"),
    log:
        f"{LOGS}/ch3/table_measures.log",
    benchmark:
        f"{BENCH}/ch3/table_measures.tsv"
    conda:
        "../../envs/flatscape.yaml"
    threads: 1
    script:
        "../../scripts/ch3/table_measures.py"
