# Chapter 4b, Sec. 4.5: detection, tracking and classification on PCE videos (Tables 4.2-4.4,
# Figures 4.3-4.5); Sec. 4.4.2: detection under partial observation (Figure 4.2c).
# Stage `base` trains on the day-1 videos and tests on day 2; stage `finetune` adapts both
# networks to the first multi-target video and tests on the second. Each rule's `cfg`
# holds exactly the fields of its job's settings class (flatscape.ch4.detection).


include: "ch4_detection_helpers.smk"


rule detection_videos:
    output:
        videos=directory(f"{DET_DIR}/videos"),
    params:
        cfg={"scenes": DETECTION["scenes"], "seed": config["seed"]},
    log:
        f"{LOGS}/ch4/detection/videos.log",
    benchmark:
        f"{BENCH}/ch4/detection/videos.tsv"
    conda:
        "../../envs/flatscape.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    script:
        "../../scripts/ch4/detection/videos.py"


rule detection_yolo_data:
    input:
        videos=rules.detection_videos.output.videos,
    output:
        data=directory(f"{DET_DIR}/yolo_data/{{stage}}"),
    params:
        cfg=detector_data_params,
    wildcard_constraints:
        stage="base|finetune",
    log:
        f"{LOGS}/ch4/detection/yolo_data_{{stage}}.log",
    benchmark:
        f"{BENCH}/ch4/detection/yolo_data_{{stage}}.tsv"
    conda:
        "../../envs/flatscape.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    script:
        "../../scripts/ch4/detection/yolo_data.py"


rule train_detector:
    input:
        data=f"{DET_DIR}/yolo_data/{{stage}}",
        init=detector_init,
    output:
        weights=f"{DET_DIR}/models/yolo_{{stage}}.pt",
        metrics=f"{DET_DIR}/models/yolo_{{stage}}.json",
    params:
        cfg=detector_params,
        # Not an output: Ultralytics' last.pt there lets a killed run resume.
        run_dir=lambda wc: f"{DET_DIR}/runs/detector_{wc.stage}",
        ultralytics=lambda wc: ultralytics_dir(f"train_detector_{wc.stage}"),
    wildcard_constraints:
        stage="base|finetune",
    log:
        f"{LOGS}/ch4/detection/train_detector_{{stage}}.log",
    benchmark:
        f"{BENCH}/ch4/detection/train_detector_{{stage}}.tsv"
    conda:
        "../../envs/flatscape.yaml"
    threads: JOB_THREADS
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=1440,
    script:
        "../../scripts/ch4/detection/train_detector.py"


rule train_crop_classifier:
    input:
        videos=rules.detection_videos.output.videos,
        init=classifier_init,
    output:
        model=f"{DET_DIR}/models/resnet18_{{stage}}.pt",
        metrics=f"{DET_DIR}/models/resnet18_{{stage}}.json",
    params:
        cfg=classifier_params,
    wildcard_constraints:
        stage="base|finetune",
    log:
        f"{LOGS}/ch4/detection/train_classifier_{{stage}}.log",
    benchmark:
        f"{BENCH}/ch4/detection/train_classifier_{{stage}}.tsv"
    conda:
        "../../envs/flatscape.yaml"
    threads: JOB_THREADS
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=600,
    script:
        "../../scripts/ch4/detection/train_classifier.py"


rule evaluate_detection:
    input:
        videos=rules.detection_videos.output.videos,
        detector=f"{DET_DIR}/models/yolo_{{stage}}.pt",
        classifier=f"{DET_DIR}/models/resnet18_{{stage}}.pt",
    output:
        csvs=[f"{DET_DIR}/eval/{{stage}}/frac{label}.csv" for label in detection_fraction_labels()],
    params:
        cfg=detection_eval_params,
        ultralytics=lambda wc: ultralytics_dir(f"evaluate_detection_{wc.stage}"),
    wildcard_constraints:
        stage="base|finetune",
    log:
        f"{LOGS}/ch4/detection/evaluate_{{stage}}.log",
    benchmark:
        f"{BENCH}/ch4/detection/evaluate_{{stage}}.tsv"
    conda:
        "../../envs/flatscape.yaml"
    threads: JOB_THREADS
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=600,
    script:
        "../../scripts/ch4/detection/evaluate_detection.py"


rule detection_tables:
    input:
        videos=rules.detection_videos.output.videos,
        evals=detection_evals("base"),
    output:
        **table_outputs(table_4_2="table_4_2", table_4_3="table_4_3", table_4_4="table_4_4", track_vote="table_4_4_track_vote"),
    log:
        f"{LOGS}/tables/table_4_2_to_4_4.log",
    benchmark:
        f"{BENCH}/tables/table_4_2_to_4_4.tsv"
    conda:
        "../../envs/flatscape.yaml"
    threads: 1
    script:
        "../../scripts/ch4/detection/detection_tables.py"


rule detection_multi_target_table:
    input:
        evals=detection_evals("finetune"),
    output:
        **table_outputs(multi="table_4_multi_target"),
    log:
        f"{LOGS}/tables/table_4_multi_target.log",
    benchmark:
        f"{BENCH}/tables/table_4_multi_target.tsv"
    conda:
        "../../envs/flatscape.yaml"
    threads: 1
    script:
        "../../scripts/ch4/detection/multi_target_table.py"


rule figure_4_3:
    input:
        videos=rules.detection_videos.output.videos,
    output:
        png=figure("figure_4_3"),
    params:
        cfg=pce_params(fraction=FIGURE_4_3_FRACTION),
    log:
        f"{LOGS}/figures/figure_4_3.log",
    benchmark:
        f"{BENCH}/figures/figure_4_3.tsv"
    conda:
        "../../envs/flatscape.yaml"
    threads: 1
    script:
        "../../scripts/ch4/detection/figure_4_3.py"


rule figure_4_4:
    input:
        videos=rules.detection_videos.output.videos,
    output:
        png=figure("figure_4_4"),
    params:
        cfg=pce_params(fractions=list(FIGURE_4_4_FRACTIONS)),
    log:
        f"{LOGS}/figures/figure_4_4.log",
    benchmark:
        f"{BENCH}/figures/figure_4_4.tsv"
    conda:
        "../../envs/flatscape.yaml"
    threads: 1
    script:
        "../../scripts/ch4/detection/figure_4_4.py"


rule figure_4_5:
    input:
        videos=rules.detection_videos.output.videos,
        evals=[f"{DET_DIR}/eval/base/frac{label}.csv" for label in figure_4_5_fractions()],
    output:
        png=figure("figure_4_5"),
    params:
        cfg=pce_params(fractions=[float(label) for label in figure_4_5_fractions()]),
    log:
        f"{LOGS}/figures/figure_4_5.log",
    benchmark:
        f"{BENCH}/figures/figure_4_5.tsv"
    conda:
        "../../envs/flatscape.yaml"
    threads: 1
    script:
        "../../scripts/ch4/detection/figure_4_5.py"
