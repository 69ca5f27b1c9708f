# Chapter 3: Sec. 3.4.2's invariance on synthetic data and Sec. 3.5's small- vs large-batch
# minima. Each rule's params are exactly the fields of its job's settings class
# (flatscape.ch3.settings), so a setting reruns only the jobs that read it.


include: "ch3_helpers.smk"
include: "ch3_measures.smk"


# ---- Sec. 3.4.2: the flatness measure's invariance on synthetic data
# (Tables 3.1-3.3, Figure 3.1, and the Euclidean-vs-Riemannian extension).


rule table_3_1:
    output:
        **table_outputs(table_3_1="table_3_1"),
    log:
        f"{LOGS}/ch3/table_3_1.log",
    benchmark:
        f"{BENCH}/ch3/table_3_1.tsv"
    conda:
        "../../envs/flatscape.yaml"
    threads: 1
    script:
        "../../scripts/ch3/architectures.py"


rule ch3_invariance_tables:
    output:
        **table_outputs(
            table_3_2="table_3_2",
            table_3_3="table_3_3",
            euclidean_vs_riemannian="table_3_euclidean_vs_riemannian",
        ),
    params:
        cfg=invariance_params("num_samples", "seed", "runs_table_3_2", "runs_table_3_3", "power_tol", "lanczos_tol", "max_hvp", "trace_probes"),
    log:
        f"{LOGS}/ch3/invariance_tables.log",
    benchmark:
        f"{BENCH}/ch3/invariance_tables.tsv"
    conda:
        "../../envs/flatscape.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=by_attempt(4000),
        runtime=by_attempt(240),
    script:
        "../../scripts/ch3/invariance_tables.py"


rule figure_3_1:
    output:
        figure_3_1=figure("figure_3_1"),
        curves=f"{RES}/ch3/invariance/figure_3_1_curves.csv",
    params:
        cfg=invariance_params("num_samples", "seed", "runs_figure_3_1", "power_tol", "lanczos_tol", "max_hvp"),
    log:
        f"{LOGS}/ch3/figure_3_1.log",
    benchmark:
        f"{BENCH}/ch3/figure_3_1.tsv"
    conda:
        "../../envs/flatscape.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=by_attempt(4000),
        runtime=by_attempt(120),
    script:
        "../../scripts/ch3/power_convergence.py"


# ---- Sec. 3.5: small- vs large-batch minima (Tables 3.4-3.7, Figures 3.2-3.6, Kendall tau).


if MINIMA["seeds_per_job"] == 1:

    rule train_minimum:
        input:
            data=minima_row_dataset,
        output:
            model=f"{MINIMA_DIR}/{{row}}/{{batch}}_seed{{seed}}.pt",
            metrics=f"{MINIMA_DIR}/{{row}}/{{batch}}_seed{{seed}}.json",
        params:
            cfg=lambda wildcards: minima_train_params(wildcards.row, wildcards.batch),
            runs=minima_train_runs,
        log:
            f"{LOGS}/ch3/minima/train_{{row}}_{{batch}}_seed{{seed}}.log",
        benchmark:
            f"{BENCH}/ch3/minima/train_{{row}}_{{batch}}_seed{{seed}}.tsv"
        conda:
            "../../envs/flatscape.yaml"
        threads: 1
        resources:
            gpu=1,
            mem_mb=by_attempt(4000),
            runtime=by_attempt(600),
        script:
            "../../scripts/ch3/train_minimum.py"

# Several seeds per job (core.train_group): a rule per group of seeds, its outputs named
# explicitly, since a rule's output count cannot depend on a wildcard (no groups when
# seeds_per_job is 1). Same files, params and script line as train_minimum, at the same
# indentation (Snakemake's code trigger compares the line's text), so either way of training
# leaves the same cache.
for _row, _batch, _seeds in minima_train_groups():

    rule:
        name:
            f"train_minima_{_row.replace('-', '_')}_{_batch}_seeds{_seeds[0]}_{_seeds[-1]}"
        input:
            data=dataset_file(MINIMA_ROWS[_row]["dataset"]),
        output:
            model=[f"{MINIMA_DIR}/{_row}/{_batch}_seed{s}.pt" for s in _seeds],
            metrics=[f"{MINIMA_DIR}/{_row}/{_batch}_seed{s}.json" for s in _seeds],
        params:
            cfg=minima_train_params(_row, _batch),
            runs=minima_train_runs,
        log:
            f"{LOGS}/ch3/minima/train_{_row}_{_batch}_seeds{_seeds[0]}-{_seeds[-1]}.log",
        benchmark:
            f"{BENCH}/ch3/minima/train_{_row}_{_batch}_seeds{_seeds[0]}-{_seeds[-1]}.tsv"
        conda:
            "../../envs/flatscape.yaml"
        threads: 1
        resources:
            gpu=1,
            mem_mb=by_attempt(4000 + 500 * len(_seeds)),
            runtime=by_attempt(600 * len(_seeds)),
        script:
            "../../scripts/ch3/train_minimum.py"


rule measure_minimum:
    input:
        model=f"{MINIMA_DIR}/{{row}}/{{batch}}_seed{{seed}}.pt",
        data=minima_row_dataset,
    output:
        json=f"{MINIMA_DIR}/{{row}}/{{batch}}_seed{{seed}}_flatness.json",
    params:
        cfg=minima_measure_params,
    log:
        f"{LOGS}/ch3/minima/measure_{{row}}_{{batch}}_seed{{seed}}.log",
    benchmark:
        f"{BENCH}/ch3/minima/measure_{{row}}_{{batch}}_seed{{seed}}.tsv"
    conda:
        "../../envs/flatscape.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=by_attempt(8000),
        runtime=by_attempt(240),
    script:
        "../../scripts/ch3/measure_minimum.py"


# ---- Beyond the thesis: flatness along the training path, at the snapshots each run
# saved the first time its training CE fell below 1e-1, 1e-2, ... (ch3.minima.path).


rule measure_path:
    input:
        metrics=f"{MINIMA_DIR}/{{row}}/{{batch}}_seed{{seed}}.json",
        data=minima_row_dataset,
    output:
        json=f"{MINIMA_DIR}/{{row}}/{{batch}}_seed{{seed}}_path/flatness_ce{{threshold}}.json",
    wildcard_constraints:
        threshold="1e-[0-9]+",
    params:
        cfg=minima_path_measure_params,
        snapshots=minima_snapshot_dir,
    log:
        f"{LOGS}/ch3/minima/measure_path_{{row}}_{{batch}}_seed{{seed}}_ce{{threshold}}.log",
    benchmark:
        f"{BENCH}/ch3/minima/measure_path_{{row}}_{{batch}}_seed{{seed}}_ce{{threshold}}.tsv"
    conda:
        "../../envs/flatscape.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=by_attempt(8000),
        runtime=by_attempt(240),
    script:
        "../../scripts/ch3/measure_path.py"


rule table_3_path:
    input:
        flatness=minima_path_runs(),
        metrics=minima_runs("metrics"),
        minima=minima_runs("flatness"),
    output:
        **table_outputs(table_3_path="table_3_path", runs="table_3_path_runs"),
    log:
        f"{LOGS}/ch3/table_3_path.log",
    benchmark:
        f"{BENCH}/ch3/table_3_path.tsv"
    conda:
        "../../envs/flatscape.yaml"
    threads: 1
    script:
        "../../scripts/ch3/table_3_path.py"


rule figure_3_path:
    input:
        path_runs=f"{RES}/tables/table_3_path_runs.csv",
    output:
        figure_3_path=figure("figure_3_path"),
    log:
        f"{LOGS}/ch3/figure_3_path.log",
    benchmark:
        f"{BENCH}/ch3/figure_3_path.tsv"
    conda:
        "../../envs/flatscape.yaml"
    threads: 1
    script:
        "../../scripts/ch3/figure_3_path.py"


rule ch3_settings_tables:
    input:
        **minima_datasets(),
    output:
        **table_outputs(table_3_4="table_3_4", table_3_5="table_3_5", table_3_6="table_3_6"),
    params:
        cfg={"rows": MINIMA["rows"], "stop_loss": MINIMA["stop_loss"]},
    log:
        f"{LOGS}/ch3/settings_tables.log",
    benchmark:
        f"{BENCH}/ch3/settings_tables.tsv"
    conda:
        "../../envs/flatscape.yaml"
    threads: 1
    script:
        "../../scripts/ch3/settings_tables.py"


rule table_3_7:
    input:
        metrics=minima_runs("metrics"),
        flatness=minima_runs("flatness"),
    output:
        **table_outputs(
            table_3_7="table_3_7",
            runs="table_3_7_runs",
            kendall="table_3_kendall",
            kendall_rescaled="table_3_kendall_rescaled",
        ),
    log:
        f"{LOGS}/ch3/table_3_7.log",
    benchmark:
        f"{BENCH}/ch3/table_3_7.tsv"
    conda:
        "../../envs/flatscape.yaml"
    threads: 1
    script:
        "../../scripts/ch3/table_3_7.py"


rule ch3_scatter_figures:
    input:
        runs=f"{RES}/tables/table_3_7_runs.csv",
    output:
        **{name: figure(name) for name in minima_scatter_figures().values()},
    log:
        f"{LOGS}/ch3/scatter_figures.log",
    benchmark:
        f"{BENCH}/ch3/scatter_figures.tsv"
    conda:
        "../../envs/flatscape.yaml"
    threads: 1
    script:
        "../../scripts/ch3/scatter_figures.py"


rule figure_3_2:
    input:
        models=minima_line_plot_models(),
        datasets=list(minima_datasets().values()),
    output:
        figure_3_2=figure("figure_3_2"),
        curves=f"{MINIMA_DIR}/figure_3_2_curves.csv",
    params:
        cfg=line_plot_params(),
    log:
        f"{LOGS}/ch3/figure_3_2.log",
    benchmark:
        f"{BENCH}/ch3/figure_3_2.tsv"
    conda:
        "../../envs/flatscape.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=by_attempt(4000),
        runtime=by_attempt(60),
    script:
        "../../scripts/ch3/line_plots.py"
