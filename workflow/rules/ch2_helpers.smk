# Helpers of ch2.smk: settings per job (its params), outputs per target, input functions.

CH2 = config["ch2"]
# The generative model every job draws its data from (flatscape.ch2.settings.DataSettings).
CH2_DATA = ("n", "num_signals", "a", "b", "seed", "device", "dtype")
# Per job: its settings field -> the ch2 config key it reads. A job's params hold only
# these, so editing a key (a figure's t range) reruns only the jobs that read it.
CH2_FIGURE_KEYS = {"bias_rule": "bias_rule", **{key: f"figure_{key}" for key in ("p_values", "t_min", "t_max", "num_t")}}
CH2_JOB_KEYS = {
    "table_2_1": {key: key for key in ("h_values", "p_values", "num_points", "bias_rule", "study_rules", "max_elements")},
    "table_2_2": {key: f"descent_{key}" for key in ("h_values", "p_values", "rules", "start_factor", "rel_tol", "max_iter", "step_rule")},
    "figure_2_1": {"h": "figure_2_1_h", **CH2_FIGURE_KEYS},
    "figure_2_2": {"h": "figure_2_2_h", **CH2_FIGURE_KEYS},
}


def ch2_params(job):
    """The settings of one Chapter 2 job, as its flatscape.ch2.settings class takes them."""
    return {"data": {key: CH2[key] for key in CH2_DATA}, **{field: CH2[key] for field, key in CH2_JOB_KEYS[job].items()}}


def ch2_outputs():
    if not CH2["enabled"]:
        return []
    return table("table_2_1") + table("table_2_2") + [figure("figure_2_1"), figure("figure_2_2")]


def ch2_extension_outputs():
    if not CH2["enabled"]:
        return []
    names = ["table_2_support_recovery", "table_2_1_bias_readings", "table_2_1_bias_summary", "table_2_1_closest_reading", "table_2_coherence"]
    return [path for name in names for path in table(name)]
