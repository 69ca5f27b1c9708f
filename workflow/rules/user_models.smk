# Flatness of your own checkpoints (config key user_models): the flatscape tool
# as a rule, so each measurement is cached and lands in the report beside the thesis's.


include: "user_models_helpers.smk"


rule measure_user_model:
    input:
        unpack(user_model_inputs),
    output:
        json=user_model_report(f"{USER_MODELS_DIR}/{{name}}.json"),
    params:
        cfg=user_model_params,
    log:
        f"{LOGS}/user_models/{{name}}.log",
    benchmark:
        f"{BENCH}/user_models/{{name}}.tsv"
    wildcard_constraints:
        name="[A-Za-z0-9_-]+",
    conda:
        "../../envs/flatscape.yaml"
    threads: JOB_THREADS
    resources:
        gpu=1,
        mem_mb=by_attempt(8000),
        runtime=by_attempt(240),
    script:
        "../../scripts/tools/measure_user_model.py"
