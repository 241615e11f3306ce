//! `spoa-loadgen`: see `spoa-loadgen --help`.

fn main() {
    std::process::exit(spoa_loadgen::cli::main(std::env::args_os(), None));
}
