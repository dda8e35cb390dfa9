//! `mqblast`: thin entry point; everything lives in the library (`app::main`).

fn main() {
    std::process::exit(mqblast::app::main());
}
