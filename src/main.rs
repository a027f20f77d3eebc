//! The `tapline` binary: the library's command line with the built-in components.

fn main() -> std::process::ExitCode {
    tapline::cli::main("tapline", tapline::Registry::builtin())
}
