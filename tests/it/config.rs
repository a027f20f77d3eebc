//! `tapline validate` and `tapline schema` against real files.
