#!/usr/bin/env bash
# Every GPU check of the open issues as one prepared run on a lent GPU machine (which has
# PyTorch but not this project's other packages, and no internet). Sections:
#   env     the card and the torch build
#   tests   the GPU-only tests (CUDA results equal the CPU's)
#   ch3     Table 3.7's MNIST-FC row at the thesis's settings plus the training-path
#           measurements: `snakemake ch3 --configfile config/mnist_faithful.yaml` (issue 15)
#   costs   seconds per training sample of every paper network on the GPU (issue 14)
#   peers   the peer benchmark on CUDA (issues 17, 24): MNIST-FC 10,000, AlexNet 2,000, ResNet-18
#           1,000 images; the peers from the wheels in .whl; data under gpu_data/ (PEERS_ARGS
#           replaces the default arguments); JSON and float64 references into $OUT
#   vgg16   per-HVP time and memory of VGG16 on 2,000 CIFAR images (issue 17); VGG_ARGS (--cifar)
#   training  issue 23: the group-training and sync-free-fit equality test on CUDA (its CPU twins
#           run in CI), then
#           steps/s with vs without a host read per step and seeds/s alone vs stacked, for
#           MNIST-FC and LeNet at batch 200 and 5000 (bench_throughput.py; TRAINING_ARGS)
#   wheels  install the carried wheels in .whl/ (snakemake and what it needs; the peers) into
#           /tmp/site: the machine has no internet and no snakemake
#   table37 Table 3.7's MNIST rows at the thesis's full settings under both training protocols,
#           the thesis's CE stop and the authors' fixed 200 epochs (batch 200 / 5000 and the
#           script's 256 / 5000): `snakemake ch3 --configfile config/table37_protocols_gpu.yaml`
#           with the MNIST mirror in gpu_data/ (benchmarks/gpu_data_overlay.yaml); keep-going, so
#           whatever finishes within TABLE37_LIMIT comes back in table37.tgz
#   table37_scale  issue 29: MNIST-FC and LeNet at the thesis's 50,000 images under the authors' fixed
#           200 epochs, 3 seeds per batch size (config/table37_scale_gpu.yaml; TABLE37_SCALE_LIMIT)
# Usage: OUT=folder bash benchmarks/gpu_checks.sh env tests ch3 costs
# Extra configfiles for the ch3 section (a data mirror path, say) go in CH3_OVERLAY.
set -u
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src:/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
PY=${PY:-python3}
stamp() { echo "=== $1 $(date +%T)"; }
snakemake_ch3() {  # snakemake_ch3 LIMIT NAME CONFIG...: Chapter 3 of a preset on every core, one GPU shared
    local limit=$1 name=$2 start
    shift 2
    start=$(date +%s)
    timeout "$limit" $PY -m snakemake ch3 --cores "${CORES:-16}" --resources gpu="${CORES:-16}" \
        --scheduler greedy --keep-going --rerun-incomplete --configfile "$@" > "$OUT/${name}_snakemake.txt" 2>&1
    echo "$name exit $? after $(($(date +%s) - start)) s" | tee -a "$OUT/${name}_snakemake.txt"
    grep -E "steps \(|Finished job|Error" "$OUT/${name}_snakemake.txt" | tail -3
}

for section in "$@"; do
    stamp "$section"
    case $section in
    env)
        nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv
        $PY -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__, torch.cuda.get_device_name())"
        ;;
    tests)
        timeout "${TESTS_LIMIT:-240}" $PY -m pytest -q -p no:cacheprovider -o addopts="" \
            tests/test_flatness.py::test_cuda_matches_cpu \
            tests/test_sparse_coding.py::test_gpu_study_matches_cpu_study 2>&1 | tee "$OUT/gpu_tests.txt"
        ;;
    ch3)
        start=$(date +%s)
        # shellcheck disable=SC2086
        timeout "${CH3_LIMIT:-420}" $PY -m snakemake ch3 --cores "${CORES:-16}" --resources gpu="${CORES:-16}" \
            --scheduler greedy --keep-going --configfile config/mnist_faithful.yaml ${CH3_OVERLAY:-} \
            > "$OUT/ch3_snakemake.txt" 2>&1
        echo "ch3 exit $? after $(($(date +%s) - start)) s" | tee -a "$OUT/ch3_snakemake.txt"
        tail -5 "$OUT/ch3_snakemake.txt"
        # Everything but the networks themselves (hundreds of MB): tables, figures, JSONs, logs, benchmarks.
        tar czf "$OUT/ch3_faithful.tgz" --exclude='*.pt' --exclude='*.ckpt' \
            results/mnist_faithful logs/mnist_faithful benchmarks/mnist_faithful 2>/dev/null
        ls -la "$OUT/ch3_faithful.tgz"
        ;;
    wheels)
        $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
            2>&1 | tail -3
        $PY -m snakemake --version
        ;;
    table37_scale)
        snakemake_ch3 "${TABLE37_SCALE_LIMIT:-480}" "$section" config/table37_scale_gpu.yaml benchmarks/gpu_data_overlay.yaml
        tar czf "$OUT/$section.tgz" --exclude='*.pt' --exclude='*.ckpt' results/table37_scale_gpu \
            logs/table37_scale_gpu benchmarks/table37_scale_gpu 2>/dev/null
        ls -la "$OUT/$section.tgz"
        ;;
    table37 | table37_small)
        # table37: the thesis's full settings; table37_small: the CPU-scale preset (5,000 images) on the GPU
        # (the small one also ranks the field's other measures on its minima: config/measures_cpu.yaml)
        if [ "$section" = table37_small ]; then
            snakemake_ch3 "${TABLE37_SMALL_LIMIT:-150}" "$section" config/table37_protocols.yaml \
                config/measures_cpu.yaml benchmarks/gpu_data_overlay.yaml
            preset=table37_protocols
        else
            snakemake_ch3 "${TABLE37_LIMIT:-420}" "$section" config/table37_protocols_gpu.yaml benchmarks/gpu_data_overlay.yaml
            preset=table37_protocols_gpu
        fi
        # Everything but the networks themselves: tables, figures, JSONs, logs, benchmarks.
        tar czf "$OUT/$section.tgz" --exclude='*.pt' --exclude='*.ckpt' "results/$preset" "logs/$preset" \
            "benchmarks/$preset" 2>/dev/null
        ls -la "$OUT/$section.tgz"
        ;;
    costs)
        timeout "${COSTS_LIMIT:-240}" $PY benchmarks/bench_paper_costs.py --device cuda 2>&1 | tee "$OUT/paper_costs_gpu.txt"
        ;;
    peers)
        # The peers' pure-Python wheels travel in .whl (the `wheels` section installs them too);
        # without pip a wheel is a zip. torchvision and Pillow are on the machine already.
        export PYTHONPATH="/tmp/site:$PYTHONPATH"
        if ! $PY -c "import pyhessian, curvlinops, hessian_eigenthings" 2> /dev/null && ls .whl/*.whl > /dev/null 2>&1; then
            $PY -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl 2> /dev/null ||
                for w in .whl/*.whl; do $PY -m zipfile -e "$w" /tmp/site; done
        fi
        # Rows are written as they finish, so a run cut by the limit keeps what it measured.
        # shellcheck disable=SC2086
        timeout "${PEERS_LIMIT:-150}" $PY benchmarks/bench_peers.py --device cuda \
            ${PEERS_ARGS:---mnist gpu_data/mnist/raw --cifar gpu_data/cifar10-jpeg/cifar10-jpeg-q75.tar.gz --repeats 3 --tools ours,eigenthings,pyhessian,ours-cold,curvlinops} \
            --out "$OUT/peers_gpu.json" --ref-cache "$OUT/peers_references_gpu.json" 2>&1 | tee "$OUT/peers_gpu.txt"
        ;;
    vgg16)
        # shellcheck disable=SC2086
        timeout "${VGG_LIMIT:-120}" $PY benchmarks/bench_vgg16_hvp.py --device cuda ${VGG_ARGS:-} 2>&1 | tee "$OUT/vgg16_hvp_gpu.txt"
        ;;
    training)
        timeout "${TRAINING_TEST_LIMIT:-120}" $PY -m pytest -q -p no:cacheprovider -o addopts="" \
            tests/test_train_group.py -k cuda 2>&1 | tee "$OUT/training_tests.txt"
        # shellcheck disable=SC2086
        timeout "${TRAINING_LIMIT:-300}" $PY benchmarks/bench_throughput.py --device cuda \
            ${TRAINING_ARGS:---seeds 10 --steps 50 --repeats 2} 2>&1 | tee "$OUT/throughput_gpu.txt"
        ;;
    *)
        echo "unknown section $section" >&2
        exit 2
        ;;
    esac
done
stamp done
