# The loss-landscape pipeline: every table and figure of the thesis, from scratch.
#
#   snakemake --cores 2                        # quick preset (config.yaml), target `all`
#   snakemake --cores 2 ch3 --configfile config/cpu.yaml
#
# Follow a result: target below -> rule in workflow/rules/<chapter>.smk -> scripts/ ->
# src/flatscape/<module>.py.

configfile: "config.yaml"


# `snakemake --report report.html`: every table and figure, by chapter, and the configuration.
report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


wildcard_constraints:
    dataset="[a-z0-9_]+",
    ratio="[0-9.]+|random",
    method="[a-z0-9_]+",
    row="[a-z0-9_]+-[a-z0-9_]+(-[a-z0-9_]+)?",
    batch="small|large",
    seed="[0-9]+",


include: "workflow/rules/datasets.smk"
include: "workflow/rules/ch2.smk"
include: "workflow/rules/ch3.smk"
include: "workflow/rules/ch4_partial.smk"
include: "workflow/rules/ch4_detection.smk"
include: "workflow/rules/user_models.smk"
include: "workflow/rules/claims.smk"


rule all:
    default_target: True
    input:
        rules.claims.output,
        ch2_outputs(),
        ch3_outputs(),
        ch4_outputs(),
        extension_outputs(),
        user_model_outputs(),


rule paper:
    input:
        rules.claims.output,
        ch2_outputs(),
        ch3_outputs(),
        ch4_outputs(),


rule ch2:
    input:
        ch2_outputs(),


rule ch3:
    input:
        ch3_outputs(),


rule ch4:
    input:
        ch4_outputs(),


rule ch4_partial:
    input:
        ch4_partial_outputs(),


rule ch4_detection:
    input:
        ch4_detection_outputs(),


rule user_models:
    input:
        user_model_outputs(),
