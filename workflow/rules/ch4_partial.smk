# Chapter 4a, Sec. 4.4.1: classification of partially observed images (Table 4.1, Fig. 4.2a).


rule encode_partial_test:
    input:
        data=dataset_file(PARTIAL["dataset"]),
    output:
        npz=f"{RES}/ch4/partial/test/ratio{{ratio}}.npz",
    params:
        ratio=lambda wc: "random" if wc.ratio == "random" else float(wc.ratio),
        seed=config["seed"],
    log:
        f"{LOGS}/ch4/partial/encode_ratio{{ratio}}.log",
    benchmark:
        f"{BENCH}/ch4/partial/encode_ratio{{ratio}}.tsv"
    conda:
        "../../envs/landscapes.yaml"
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
        model=f"{RES}/ch4/partial/models/{{method}}.pt",
        metrics=f"{RES}/ch4/partial/models/{{method}}.json",
    params:
        cfg=partial_train_params,
        # Not an output: it must survive a killed job so the rerun resumes from it.
        checkpoint=f"{RES}/ch4/partial/models/{{method}}.ckpt",
    log:
        f"{LOGS}/ch4/partial/train_{{method}}.log",
    benchmark:
        f"{BENCH}/ch4/partial/train_{{method}}.tsv"
    conda:
        "../../envs/landscapes.yaml"
    threads: 2
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
        model=f"{RES}/ch4/partial/autoencoders/ratio{{ratio}}.pt",
        metrics=f"{RES}/ch4/partial/autoencoders/ratio{{ratio}}.json",
    params:
        cfg=partial_autoencoder_params,
        checkpoint=f"{RES}/ch4/partial/autoencoders/ratio{{ratio}}.ckpt",
    log:
        f"{LOGS}/ch4/partial/train_autoencoder_ratio{{ratio}}.log",
    benchmark:
        f"{BENCH}/ch4/partial/train_autoencoder_ratio{{ratio}}.tsv"
    conda:
        "../../envs/landscapes.yaml"
    threads: 2
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
        json=f"{RES}/ch4/partial/eval/{{method}}/ratio{{ratio}}.json",
    params:
        batch_size=PARTIAL["eval_batch_size"],
        device=config["device"],
    log:
        f"{LOGS}/ch4/partial/eval_{{method}}_ratio{{ratio}}.log",
    benchmark:
        f"{BENCH}/ch4/partial/eval_{{method}}_ratio{{ratio}}.tsv"
    conda:
        "../../envs/landscapes.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=by_attempt(4000),
        runtime=by_attempt(30),
    script:
        "../../scripts/ch4/partial/evaluate_partial.py"


rule time_partial:
    input:
        direct=f"{RES}/ch4/partial/models/vgg16_ours.pt",
        classifier=f"{RES}/ch4/partial/models/vgg16.pt",
        autoencoders=partial_autoencoders(),
        tests=list(partial_timing_tests().values()),
    output:
        **table_outputs(timings="figure_4_2b_timings"),
    params:
        tests=partial_timing_tests(),
        batch_size=PARTIAL["eval_batch_size"],
        repeats=PARTIAL["timing_repeats"],
        device=config["device"],
    log:
        f"{LOGS}/ch4/partial/time_partial.log",
    benchmark:
        f"{BENCH}/ch4/partial/time_partial.tsv"
    conda:
        "../../envs/landscapes.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=by_attempt(8000),
        runtime=by_attempt(60),
    script:
        "../../scripts/ch4/partial/time_partial.py"


rule table_4_1:
    input:
        evals=expand(
            f"{RES}/ch4/partial/eval/{{method}}/ratio{{ratio}}.json",
            method=partial_methods(),
            ratio=[label.lower() if label == "Random" else label for label in partial_ratio_labels()],
        ),
    output:
        **table_outputs(table_4_1="table_4_1"),
    log:
        f"{LOGS}/tables/table_4_1.log",
    benchmark:
        f"{BENCH}/tables/table_4_1.tsv"
    conda:
        "../../envs/landscapes.yaml"
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
        "../../envs/landscapes.yaml"
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
        "../../envs/landscapes.yaml"
    threads: 1
    script:
        "../../scripts/ch4/partial/figure_4_2b.py"
