# The thesis's claims checked against this run's own tables: the report's landing page
# (workflow/report/workflow.rst) shows claims.csv first. It reads only the tables the
# preset builds; a claim whose table is not among them reads "not run in this preset".

rule claims:
    input:
        tables=claims_inputs(),
    output:
        csv=report(
            f"{RES}/tables/claims.csv",
            caption=os.path.join(REPORT_DIR, "captions", "claims.rst"),
            category="Thesis claims",
            subcategory="Tables",
            labels={"thesis": "Chapters 2-4", "name": "claims"},
        ),
        md=f"{RES}/tables/claims.md",
        html=f"{RES}/tables/claims.html",
    params:
        tables_dir=lambda wildcards, output: os.path.dirname(output.csv),
    log:
        f"{LOGS}/tables/claims.log",
    benchmark:
        f"{BENCH}/tables/claims.tsv"
    conda:
        "../../envs/flatscape.yaml"
    threads: 1
    script:
        "../../scripts/tools/claims.py"
