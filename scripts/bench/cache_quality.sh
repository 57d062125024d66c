#!/usr/bin/env bash
# The quality of each `--cache` mode against `--cache none` with the same seed: token
# agreement with the uncached output (the share of generated positions holding the same
# id), BLEU against the uncached output and BLEU against the references (dlm score bleu:
# sacreBLEU 2.6.0's corpus BLEU, 13a). This is the table of docs/caching.md.
#
#   scripts/bench/cache_quality.sh demo [ROWS]         # (a) the demo's trained model
#   scripts/bench/cache_quality.sh llada-bench [N]     # (c) the LLaDA-shaped bench model
#
# demo: `dlm demo` must have written .cache/demo/best (MODEL= to use another directory).
# The first ROWS (default 100) rows of data/demo/iwslt14-deen.jsonl (held out from the
# demo's training), oracle length (the reference's token count, as the demo prints),
# STEPS (default 10; the paper decodes translation with 50) steps, seed 0: reparam-uncond
# with none and REPARAM_CACHES (default "refresh:2 refresh:4 refresh:8 reuse:2 reuse:4
# reuse:8"); llada with blocks of 8 and 4 steps per block (2 tokens a step) with none,
# prefix, dual, refresh:4, reuse:4 (LLADA=0 leaves these out). Outputs of STEPS other than
# 10 go to $OUT/demo-kSTEPS.
# llada-bench: N (default 4) prompts of 32 random ids (seeded), 64 generated tokens, blocks
# of 32: llada (64 steps) and fast-dllm --threshold 0.9 with none, prefix, dual (and
# llada refresh:4); token agreement only (random weights, no references, no tokenizer).
#
# Every run is one `dlm generate --json` call; outputs land in $OUT (default
# .cache/cache-quality/), the table is printed as Markdown. DLM= picks the binary
# (default target/release/dlm: build it with `cargo build --release -p dlm-cli`).
# ONLY="llada-none llada-dual" runs just those modes (the others' outputs from an earlier
# run are kept and tabled; on 2 cores one llada-bench mode takes up to a few minutes).
set -euo pipefail
cd "$(dirname "$0")/../.."
DLM=${DLM:-target/release/dlm}
OUT=${OUT:-.cache/cache-quality}
what=${1:-demo}
export RUST_LOG=${RUST_LOG:-warn}

# agreement BASE.jsonl RUN.jsonl → "agree/total rows_equal/rows"
agreement() {
    jq -n -r --slurpfile a "$1" --slurpfile b "$2" '
        [range(0; $a | length) as $i | [$a[$i].generated_ids, $b[$i].generated_ids]] as $pairs
        | ([$pairs[] | . as [$x, $y] | [range(0; $x | length) | select($x[.] == $y[.])] | length] | add) as $agree
        | ([$pairs[] | .[0] | length] | add) as $total
        | ([$pairs[] | select(.[0] == .[1])] | length) as $same
        | "\($agree) \($total) \($same) \($pairs | length)"'
}

bleu() { # REF.txt HYP.txt → score
    "$DLM" score bleu --ref "$1" --hyp "$2" --json | jq -r '.score * 100 | round / 100'
}

texts() { # RUN.jsonl → one line of text per row
    jq -r '.text | gsub("\n"; " ")' "$1"
}

wanted() { # name → whether to run it
    [[ -z ${ONLY:-} || " $ONLY " == *" $1 "* ]]
}

row() { # label base run [refs]
    local label=$1 base=$2 run=$3 refs=${4:-}
    [[ -s $base && -s $run ]] || return 0
    read -r agree total same rows < <(agreement "$base" "$run")
    local pct
    pct=$(awk -v a="$agree" -v t="$total" 'BEGIN { printf "%.1f", 100 * a / t }')
    if [[ -n $refs ]]; then
        texts "$base" > "$OUT/base.txt"
        texts "$run" > "$OUT/run.txt"
        echo "| $label | $pct % ($agree/$total) | $same/$rows | $(bleu "$OUT/base.txt" "$OUT/run.txt") | $(bleu "$refs" "$OUT/run.txt") |"
    else
        echo "| $label | $pct % ($agree/$total) | $same/$rows |"
    fi
}

case $what in
demo)
    rows=${2:-100}
    model=${MODEL:-.cache/demo/best}
    [[ -f $model/config.json ]] || { echo "no model in $model: run \`$DLM demo\` (or cargo run --release -p dlm-cli -- demo) first" >&2; exit 1; }
    steps=${STEPS:-10}
    reparam=(none ${REPARAM_CACHES:-refresh:2 refresh:4 refresh:8 reuse:2 reuse:4 reuse:8})
    llada=(); [[ ${LLADA:-1} == 0 ]] || llada=(none prefix dual refresh:4 reuse:4)
    dir=$OUT/demo$([[ $steps == 10 ]] || echo "-k$steps")
    mkdir -p "$dir"
    head -n "$rows" "${DATA:-data/demo/iwslt14-deen.jsonl}" > "$dir/rows.jsonl"
    jq -r '.targets | gsub("\n"; " ")' "$dir/rows.jsonl" > "$dir/refs.txt"
    # Oracle lengths: the reference's token count (the canvas of --prompt TARGET --length 1
    # is <s> target <mask> </s>).
    : > "$dir/lengths.txt"
    while IFS= read -r target; do
        "$DLM" generate --model "$model" --prompt "$target" --length 1 --json | jq '[(.ids | length) - 3, 1] | max' >> "$dir/lengths.txt"
    done < <(jq -r '.targets' "$dir/rows.jsonl")
    mapfile -t lengths < "$dir/lengths.txt"
    mapfile -t inputs < <(jq -r '.inputs' "$dir/rows.jsonl")
    run_mode() { # name, then dlm generate options; the steps of llada follow the length
        local name=$1; shift
        wanted "$name" || return 0
        local file=$dir/$name.jsonl
        : > "$file"
        for i in "${!inputs[@]}"; do
            local l=${lengths[$i]} extra=()
            if [[ $name == llada-* ]]; then
                extra=(--block-length 8 --steps $((4 * ((l + 7) / 8))))
            else
                extra=(--steps "$steps")
            fi
            "$DLM" generate --model "$model" --prompt "${inputs[$i]}" --length "$l" --seed 0 --json "${extra[@]}" "$@" \
                | jq -c '{generated_ids, text}' >> "$file"
        done
    }
    for c in "${reparam[@]}"; do
        run_mode "reparam-$c" --strategy reparam-uncond --cache "$c"
    done
    for c in "${llada[@]}"; do
        run_mode "llada-$c" --strategy llada --cache "$c"
    done
    echo "| strategy, cache | token agreement with none | rows identical | BLEU vs none | BLEU vs references |"
    echo "|---|---|---|---|---|"
    for c in "${reparam[@]}"; do
        row "reparam-uncond ($steps steps), $c" "$dir/reparam-none.jsonl" "$dir/reparam-$c.jsonl" "$dir/refs.txt"
    done
    for c in "${llada[@]}"; do
        row "llada (blocks of 8), $c" "$dir/llada-none.jsonl" "$dir/llada-$c.jsonl" "$dir/refs.txt"
    done
    ;;
llada-bench)
    n=${2:-4}
    model=${MODEL:-.cache/bench/llada-bench}
    dir=$OUT/llada-bench
    mkdir -p "$dir"
    prompts=()
    for i in $(seq 1 "$n"); do
        prompts+=("$(python3 -c "import random; random.seed($i); print(','.join(str(random.randrange(100, 100000)) for _ in range(32)))")")
    done
    run_mode() { # name, then dlm generate options
        local name=$1; shift
        wanted "$name" || return 0
        local file=$dir/$name.jsonl
        : > "$file"
        for p in "${prompts[@]}"; do
            "$DLM" generate --model "$model" --prompt-ids "$p" --length 64 --block-length 32 --seed 0 --json "$@" \
                | jq -c '{generated_ids, steps}' >> "$file"
        done
    }
    for c in none prefix dual refresh:4; do
        run_mode "llada-$c" --strategy llada --steps 64 --cache "$c"
    done
    for c in none prefix dual; do
        run_mode "fast-dllm-$c" --strategy fast-dllm --threshold 0.9 --cache "$c"
    done
    echo "| strategy, cache | token agreement with none | rows identical |"
    echo "|---|---|---|"
    for c in none prefix dual refresh:4; do
        row "llada, $c" "$dir/llada-none.jsonl" "$dir/llada-$c.jsonl"
    done
    for c in none prefix dual; do
        row "fast-dllm 0.9, $c" "$dir/fast-dllm-none.jsonl" "$dir/fast-dllm-$c.jsonl"
    done
    ;;
*)
    echo "usage: $0 demo [ROWS] | llada-bench [N]" >&2
    exit 2
    ;;
esac
