//! The `tapline` process: signals, exit codes, the state file, the quickstart.
