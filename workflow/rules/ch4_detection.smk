# Chapter 4b, Sec. 4.5: detection, tracking and classification on PCE videos (Tables 4.2-4.4,
# Figures 4.3-4.5); Sec. 4.4.2: detection under partial observation (Figure 4.2c).
# Stage `base` trains on the day-1 videos and tests on day 2; stage `finetune` adapts both
# networks to the first multi-target video and tests on the second.


rule detection_videos:
    output:
        videos=directory(f"{DET_DIR}/videos"),
    params:
        scenes=DETECTION["scenes"],
        seed=config["seed"],
    log:
        f"{LOGS}/ch4/detection/videos.log",
    benchmark:
        f"{BENCH}/ch4/detection/videos.tsv"
    conda:
        "../../envs/landscapes.yaml"
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
        splits=lambda wc: detection_train_splits(wc.stage),
        train_fractions=DETECTION["pce"]["train_fractions"],
        frames_per_code=DETECTION["pce"]["frames_per_code"],
        exposure=DETECTION["pce"]["exposure"],
        raw_stride=DETECTION["detector"]["raw_stride"],
        val_fraction=DETECTION["detector"]["val_fraction"],
        seed=config["seed"],
    wildcard_constraints:
        stage="base|finetune",
    log:
        f"{LOGS}/ch4/detection/yolo_data_{{stage}}.log",
    benchmark:
        f"{BENCH}/ch4/detection/yolo_data_{{stage}}.tsv"
    conda:
        "../../envs/landscapes.yaml"
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
        "../../envs/landscapes.yaml"
    threads: 2
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
        "../../envs/landscapes.yaml"
    threads: 2
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
        csv=f"{DET_DIR}/eval/{{stage}}/frac{{fraction}}.csv",
    params:
        cfg=detection_eval_params,
        ultralytics=lambda wc: ultralytics_dir(f"evaluate_detection_{wc.stage}_{wc.fraction}"),
    wildcard_constraints:
        stage="base|finetune",
        fraction="[0-9.]+",
    log:
        f"{LOGS}/ch4/detection/evaluate_{{stage}}_frac{{fraction}}.log",
    benchmark:
        f"{BENCH}/ch4/detection/evaluate_{{stage}}_frac{{fraction}}.tsv"
    conda:
        "../../envs/landscapes.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=120,
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
        "../../envs/landscapes.yaml"
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
        "../../envs/landscapes.yaml"
    threads: 1
    script:
        "../../scripts/ch4/detection/multi_target_table.py"


rule figure_4_3:
    input:
        videos=rules.detection_videos.output.videos,
    output:
        png=figure("figure_4_3"),
    params:
        fraction=0.25,
        frames_per_code=DETECTION["pce"]["frames_per_code"],
        exposure=DETECTION["pce"]["exposure"],
        seed=config["seed"],
    log:
        f"{LOGS}/figures/figure_4_3.log",
    benchmark:
        f"{BENCH}/figures/figure_4_3.tsv"
    conda:
        "../../envs/landscapes.yaml"
    threads: 1
    script:
        "../../scripts/ch4/detection/figure_4_3.py"


rule figure_4_4:
    input:
        videos=rules.detection_videos.output.videos,
    output:
        png=figure("figure_4_4"),
    params:
        fractions=[0.5, 0.25, 0.125],
        frames_per_code=DETECTION["pce"]["frames_per_code"],
        exposure=DETECTION["pce"]["exposure"],
        seed=config["seed"],
    log:
        f"{LOGS}/figures/figure_4_4.log",
    benchmark:
        f"{BENCH}/figures/figure_4_4.tsv"
    conda:
        "../../envs/landscapes.yaml"
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
        fractions=[float(label) for label in figure_4_5_fractions()],
        frames_per_code=DETECTION["pce"]["frames_per_code"],
        exposure=DETECTION["pce"]["exposure"],
        seed=config["seed"],
    log:
        f"{LOGS}/figures/figure_4_5.log",
    benchmark:
        f"{BENCH}/figures/figure_4_5.tsv"
    conda:
        "../../envs/landscapes.yaml"
    threads: 1
    script:
        "../../scripts/ch4/detection/figure_4_5.py"


rule partial_detection_data:
    output:
        data=directory(f"{DET_DIR}/partial/data"),
    params:
        cfg=DETECTION["partial"],
        seed=config["seed"],
        root=config["data"]["root"],
        ultralytics=ultralytics_dir("partial_detection_data"),
    log:
        f"{LOGS}/ch4/detection/partial_data.log",
    benchmark:
        f"{BENCH}/ch4/detection/partial_data.tsv"
    conda:
        "../../envs/landscapes.yaml"
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
        weights=f"{DET_DIR}/partial/models/{{method}}.pt",
        metrics=f"{DET_DIR}/partial/models/{{method}}.json",
    params:
        cfg=partial_detector_params,
        run_dir=lambda wc: f"{DET_DIR}/partial/runs/{wc.method}",
        ultralytics=lambda wc: ultralytics_dir(f"train_partial_detector_{wc.method}"),
    wildcard_constraints:
        method="full|ours",
    log:
        f"{LOGS}/ch4/detection/train_partial_detector_{{method}}.log",
    benchmark:
        f"{BENCH}/ch4/detection/train_partial_detector_{{method}}.tsv"
    conda:
        "../../envs/landscapes.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=1440,
    script:
        "../../scripts/ch4/partial/train_partial_detector.py"


rule evaluate_partial_detector:
    input:
        data=rules.partial_detection_data.output.data,
        weights=f"{DET_DIR}/partial/models/{{method}}.pt",
    output:
        json=f"{DET_DIR}/partial/eval/{{method}}.json",
    params:
        cfg=partial_eval_params,
        run_dir=lambda wc: f"{DET_DIR}/partial/val/{wc.method}",
        ultralytics=lambda wc: ultralytics_dir(f"evaluate_partial_detector_{wc.method}"),
    wildcard_constraints:
        method="full|ours",
    log:
        f"{LOGS}/ch4/detection/evaluate_partial_detector_{{method}}.log",
    benchmark:
        f"{BENCH}/ch4/detection/evaluate_partial_detector_{{method}}.tsv"
    conda:
        "../../envs/landscapes.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=240,
    script:
        "../../scripts/ch4/partial/evaluate_partial_detector.py"


rule figure_4_2c:
    input:
        evals=expand(f"{DET_DIR}/partial/eval/{{method}}.json", method=partial_detection_methods()),
    output:
        png=figure("figure_4_2c"),
        **table_outputs(map50="table_4_2c_map50"),
    log:
        f"{LOGS}/figures/figure_4_2c.log",
    benchmark:
        f"{BENCH}/figures/figure_4_2c.tsv"
    conda:
        "../../envs/landscapes.yaml"
    threads: 1
    script:
        "../../scripts/ch4/partial/figure_4_2c.py"
