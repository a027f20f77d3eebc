//! The `tapline` binary: the library's command line with the built-in components.

/// mimalloc instead of the system allocator: a record is allocated on one thread (the source's)
/// and freed on another (the transform's or the sink's), and glibc's malloc spent about 40% of a
/// transform run on that (`cargo bench --bench transform`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tapline::cli::main("tapline", tapline::Registry::builtin())
}
