# Chapter 4, partial observation: classification (Sec. 4.4.1: Table 4.1, Figures 4.2a/b)
# and detection (Sec. 4.4.2: Figure 4.2c). Observation ratios are
# flatscape.pipeline.naming.Ratio objects throughout: `.wildcard` names files,
# `.label` names table columns, and the jobs' settings receive the Ratio itself.


include: "ch4_partial_helpers.smk"


rule encode_partial_test:
    input:
        data=dataset_file(PARTIAL["dataset"]),
    output:
        [partial_test_set(r) for r in partial_test_ratios()],
    params:
        # EncodeSettings: the ratios in the order of the outputs.
        cfg={"ratios": partial_test_ratios(), "seed": config["seed"]},
    log:
        f"{LOGS}/ch4/partial/encode.log",
    benchmark:
        f"{BENCH}/ch4/partial/encode.tsv"
    conda:
        "../../envs/flatscape.yaml"
    threads: 1
    resources:
        mem_mb=by_attempt(4000),
        runtime=by_attempt(30),
    script:
        "../../scripts/ch4/partial/encode_partial.py"


rule train_partial_classifier:
    input:
        data=dataset_file(PARTIAL["dataset"]),
    output:
        model=f"{PARTIAL_DIR}/models/{{method}}.pt",
        metrics=f"{PARTIAL_DIR}/models/{{method}}.json",
    params:
        cfg=partial_train_params,
        # Not an output: it must survive a killed job so the rerun resumes from it.
        checkpoint=f"{PARTIAL_DIR}/models/{{method}}.ckpt",
    log:
        f"{LOGS}/ch4/partial/train_{{method}}.log",
    benchmark:
        f"{BENCH}/ch4/partial/train_{{method}}.tsv"
    conda:
        "../../envs/flatscape.yaml"
    threads: JOB_THREADS
    resources:
        gpu=1,
        mem_mb=by_attempt(8000),
        runtime=by_attempt(600),
    script:
        "../../scripts/ch4/partial/train_partial.py"


rule train_autoencoder:
    input:
        data=dataset_file(PARTIAL["dataset"]),
    output:
        model=f"{PARTIAL_DIR}/autoencoders/ratio{{ratio}}.pt",
        metrics=f"{PARTIAL_DIR}/autoencoders/ratio{{ratio}}.json",
    params:
        cfg=partial_autoencoder_params,
        checkpoint=f"{PARTIAL_DIR}/autoencoders/ratio{{ratio}}.ckpt",
    log:
        f"{LOGS}/ch4/partial/train_autoencoder_ratio{{ratio}}.log",
    benchmark:
        f"{BENCH}/ch4/partial/train_autoencoder_ratio{{ratio}}.tsv"
    conda:
        "../../envs/flatscape.yaml"
    threads: JOB_THREADS
    resources:
        gpu=1,
        mem_mb=by_attempt(8000),
        runtime=by_attempt(240),
    script:
        "../../scripts/ch4/partial/train_autoencoder.py"


rule evaluate_partial:
    input:
        unpack(partial_eval_inputs),
    output:
        partial_eval_outputs(),
    params:
        cfg=partial_eval_params,
    log:
        f"{LOGS}/ch4/partial/eval_{{method}}.log",
    benchmark:
        f"{BENCH}/ch4/partial/eval_{{method}}.tsv"
    conda:
        "../../envs/flatscape.yaml"
    threads: JOB_THREADS
    resources:
        gpu=1,
        mem_mb=by_attempt(4000),
        runtime=by_attempt(60),
    script:
        "../../scripts/ch4/partial/evaluate_partial.py"


rule time_partial:
    input:
        direct=f"{PARTIAL_DIR}/models/vgg16_ours.pt",
        classifier=f"{PARTIAL_DIR}/models/vgg16.pt",
        autoencoders=partial_autoencoders(),
        tests=[partial_test_set(r) for r in partial_fixed_ratios()],
    output:
        **table_outputs(timings="figure_4_2b_timings"),
    params:
        # TimingSettings: the ratios of the `tests` input, in its order.
        cfg={
            "ratios": partial_fixed_ratios(),
            "batch_size": PARTIAL["eval_batch_size"],
            "repeats": PARTIAL["timing_repeats"],
            "device": config["device"],
        },
    log:
        f"{LOGS}/ch4/partial/time_partial.log",
    benchmark:
        f"{BENCH}/ch4/partial/time_partial.tsv"
    conda:
        "../../envs/flatscape.yaml"
    threads: JOB_THREADS
    resources:
        gpu=1,
        mem_mb=by_attempt(8000),
        runtime=by_attempt(60),
    script:
        "../../scripts/ch4/partial/time_partial.py"


rule table_4_1:
    input:
        evals=expand(
            f"{PARTIAL_DIR}/eval/{{method}}/ratio{{ratio}}.json",
            method=partial_methods(),
            ratio=[r.wildcard for r in partial_test_ratios()],
        ),
    output:
        **table_outputs(table_4_1="table_4_1"),
    log:
        f"{LOGS}/tables/table_4_1.log",
    benchmark:
        f"{BENCH}/tables/table_4_1.tsv"
    conda:
        "../../envs/flatscape.yaml"
    threads: 1
    script:
        "../../scripts/ch4/partial/table_4_1.py"


rule figure_4_2a:
    input:
        table=f"{RES}/tables/table_4_1.csv",
    output:
        png=figure("figure_4_2a"),
    log:
        f"{LOGS}/figures/figure_4_2a.log",
    benchmark:
        f"{BENCH}/figures/figure_4_2a.tsv"
    conda:
        "../../envs/flatscape.yaml"
    threads: 1
    script:
        "../../scripts/ch4/partial/figure_4_2a.py"


rule figure_4_2b:
    input:
        timings=f"{RES}/tables/figure_4_2b_timings.csv",
    output:
        png=figure("figure_4_2b"),
    log:
        f"{LOGS}/figures/figure_4_2b.log",
    benchmark:
        f"{BENCH}/figures/figure_4_2b.tsv"
    conda:
        "../../envs/flatscape.yaml"
    threads: 1
    script:
        "../../scripts/ch4/partial/figure_4_2b.py"


rule partial_detection_data:
    input:
        unpack(partial_detection_data_inputs),
    output:
        data=directory(f"{PARTIAL_DET_DIR}/data"),
    params:
        cfg=partial_detection_data_params(),
        ultralytics=lambda wc: ultralytics_dir("partial_detection_data"),
    log:
        f"{LOGS}/ch4/detection/partial_data.log",
    benchmark:
        f"{BENCH}/ch4/detection/partial_data.tsv"
    conda:
        "../../envs/flatscape.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=240,
    script:
        "../../scripts/ch4/partial/partial_detection_data.py"


rule train_partial_detector:
    input:
        data=rules.partial_detection_data.output.data,
    output:
        weights=f"{PARTIAL_DET_DIR}/models/{{method}}.pt",
        metrics=f"{PARTIAL_DET_DIR}/models/{{method}}.json",
    params:
        cfg=partial_detector_params,
        run_dir=lambda wc: f"{PARTIAL_DET_DIR}/runs/{wc.method}",
        ultralytics=lambda wc: ultralytics_dir(f"train_partial_detector_{wc.method}"),
    wildcard_constraints:
        method="full|ours",
    log:
        f"{LOGS}/ch4/detection/train_partial_detector_{{method}}.log",
    benchmark:
        f"{BENCH}/ch4/detection/train_partial_detector_{{method}}.tsv"
    conda:
        "../../envs/flatscape.yaml"
    threads: JOB_THREADS
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=1440,
    script:
        "../../scripts/ch4/partial/train_partial_detector.py"


rule evaluate_partial_detector:
    input:
        data=rules.partial_detection_data.output.data,
        weights=f"{PARTIAL_DET_DIR}/models/{{method}}.pt",
    output:
        json=f"{PARTIAL_DET_DIR}/eval/{{method}}.json",
    params:
        cfg=partial_detector_eval_params,
        run_dir=lambda wc: f"{PARTIAL_DET_DIR}/val/{wc.method}",
        ultralytics=lambda wc: ultralytics_dir(f"evaluate_partial_detector_{wc.method}"),
    wildcard_constraints:
        method="full|ours",
    log:
        f"{LOGS}/ch4/detection/evaluate_partial_detector_{{method}}.log",
    benchmark:
        f"{BENCH}/ch4/detection/evaluate_partial_detector_{{method}}.tsv"
    conda:
        "../../envs/flatscape.yaml"
    threads: JOB_THREADS
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=240,
    script:
        "../../scripts/ch4/partial/evaluate_partial_detector.py"


rule figure_4_2c:
    input:
        evals=expand(f"{PARTIAL_DET_DIR}/eval/{{method}}.json", method=partial_detection_methods()),
    output:
        png=figure("figure_4_2c"),
        **table_outputs(map50="table_4_2c_map50"),
    log:
        f"{LOGS}/figures/figure_4_2c.log",
    benchmark:
        f"{BENCH}/figures/figure_4_2c.tsv"
    conda:
        "../../envs/flatscape.yaml"
    threads: 1
    script:
        "../../scripts/ch4/partial/figure_4_2c.py"
