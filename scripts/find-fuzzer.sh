# shellcheck shell=bash disable=SC2154  # $me is set by the script that sources this
# Sourced by fuzz-pserv and fuzz-utils: find_fuzzer prints where `fuzzer` is: beside the calling
# script (installed), else the repository's release build, else on PATH.
find_fuzzer() {
    local dir
    dir=$(dirname "$(readlink -f "$0")")
    if [[ -x $dir/fuzzer ]]; then
        echo "$dir/fuzzer"
    elif [[ -x $dir/../target/release/fuzzer ]]; then
        readlink -f "$dir/../target/release/fuzzer"
    elif command -v fuzzer >/dev/null; then
        command -v fuzzer
    else
        echo "$me: fuzzer not found: build it with \`cargo build --release --workspace\` in the pserv-fuzz folder, or install it with scripts/install" >&2
        exit 1
    fi
}
